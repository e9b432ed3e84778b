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

These TF graph loops run for inference (and so in exported SavedModels), with masks,
under XLA, for bfloat16 and for any elementwise activation; training steps use the
compiled kernels of seqapps.layers.bptt_native where those apply. Both give the same
numbers (tests/seqapps/test_native_kernels.py).

Speed (measured in benchmarks/recurrent.py, see README): on CPU a step is one small
matrix product, so what a step costs besides it matters. The loops are written out in
the graph for sequences of known length up to _FULL_UNROLL_MAX steps, and otherwise run
as a tf.while_loop whose body holds _UNROLL steps (each loop iteration has a fixed cost in
control-flow ops). The backward step is an add, one fused activation-gradient op
(TanhGrad, SigmoidGrad, ReluGrad) and the product with W_s^T; for a layer that returns
only its final state, the add goes too.

>>> import tensorflow as tf
>>> x = tf.ones([3, 1, 1])           # time-major: 3 steps, batch 1, 1 feature
>>> states = recurrence(x, tf.ones([1, 1]), tf.constant([[0.5]]), tf.zeros([1]),
...                     tf.zeros([1, 1]), activation="linear")
>>> [round(float(v), 3) for v in tf.reshape(states, [-1])]   # IIR: s(n) = x(n) + 0.5 s(n-1)
[1.0, 1.5, 1.75]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import keras
import tensorflow as tf

from seqapps.errors import invalid_argument

# phi'(a) written in terms of s = phi(a) for the activations where that is exact, so the
# backward pass needs no stored pre-activations.
_DERIVATIVE_FROM_OUTPUT: dict[Callable, Callable] = {
    keras.activations.tanh: lambda s: 1.0 - tf.square(s),
    keras.activations.sigmoid: lambda s: s * (1.0 - s),
    keras.activations.relu: lambda s: tf.cast(s > 0, s.dtype),
    keras.activations.linear: lambda s: tf.ones_like(s),
}


# dLoss/da(n) = G(n) * phi'(a(n)) as one TF op from s(n) = phi(a(n)) and G(n): the same
# kernels TF's own gradients use. Inside the time loop this costs one op per step and
# needs no [time, batch, units] derivative tensor.
_FUSED_BACKWARD: dict[Callable, Callable] = {
    keras.activations.tanh: lambda s, g: tf.raw_ops.TanhGrad(y=s, dy=g),
    keras.activations.sigmoid: lambda s, g: tf.raw_ops.SigmoidGrad(y=s, dy=g),
    keras.activations.relu: lambda s, g: tf.raw_ops.ReluGrad(gradients=g, features=s),
    keras.activations.linear: lambda s, g: g,
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


# Steps per iteration of the time loops. A tf.while_loop iteration costs several
# control-flow ops per loop variable; unrolling pays that once per chunk. Sequences of
# known length up to _FULL_UNROLL_MAX steps have no loop at all. Chosen by measurement
# (benchmarks/recurrent.py, README "Performance"): at 1000 steps chunks of 8/16/32/64 gave
# train-step ratios to SimpleRNN of 0.41/0.39/0.38/0.40; at 100 steps writing all steps
# out beat chunks of 16 (0.63 vs 0.82).
_UNROLL = 32
_FULL_UNROLL_MAX = 128
# Steps per input-projection block in bptt_forward.forward_only. Measured (benchmarks/recurrent.py,
# README "Performance"): projecting 4-8 steps at a time lets the executor compute later
# blocks on the other core while the recursion runs, instead of one product up front.
_PROJECTION_BLOCK = 4


def full_unroll_max() -> int:
    """The longest known length written out with no loop (128, or as `loop_settings` sets it).

    Also the longest inference call that `Recurrent` sends to forward_only.

    >>> full_unroll_max()
    128
    """
    return _FULL_UNROLL_MAX


def projection_block() -> int:
    """Steps per input-projection block in forward_only (4, or as `loop_settings` sets it)."""
    return _PROJECTION_BLOCK


@contextlib.contextmanager
def loop_settings(*, unroll: int | None = None, full_unroll_max: int | None = None,
                  projection_block: int | None = None) -> Iterator[None]:
    """Within it, graphs traced use other loop layouts (for tests and tuning; same numbers).

    Args:
        unroll: steps per tf.while_loop iteration (default 32).
        full_unroll_max: longest known length written out with no loop (default 128; 0
            sends every length through the loop). Also the longest inference call that
            takes forward_only.
        projection_block: steps per input-projection block in forward_only (default 4).

    >>> with loop_settings(unroll=4, full_unroll_max=0):   # the chunked while_loop
    ...     states = recurrence(tf.ones([9, 1, 1]), tf.ones([1, 1]), tf.zeros([1, 1]),
    ...                         tf.zeros([1]), tf.zeros([1, 1]), activation="linear")
    """
    global _UNROLL, _FULL_UNROLL_MAX, _PROJECTION_BLOCK
    for name, value, least in (("unroll", unroll, 1), ("full_unroll_max", full_unroll_max, 0),
                               ("projection_block", projection_block, 1)):
        if value is not None and (not isinstance(value, int) or value < least):
            raise invalid_argument(name, value, f"None or an integer >= {least}")
    previous = _UNROLL, _FULL_UNROLL_MAX, _PROJECTION_BLOCK
    _UNROLL = previous[0] if unroll is None else unroll
    _FULL_UNROLL_MAX = previous[1] if full_unroll_max is None else full_unroll_max
    _PROJECTION_BLOCK = previous[2] if projection_block is None else projection_block
    try:
        yield
    finally:
        _UNROLL, _FULL_UNROLL_MAX, _PROJECTION_BLOCK = previous


def _scan(step_fn, sequences, carry, *, outputs: int, reverse=False, unroll=None):
    """Run carry, outs = step_fn(carry, [seq[n] for seq in sequences]) over time.

    All steps written out when the length is static and at most _FULL_UNROLL_MAX;
    otherwise a tf.while_loop over chunks of `unroll` steps written out in its body, then
    the leftover steps (written out when the length is static, else a plain loop). Every
    per-step output has the shape and dtype of the carry [batch, units].

    Args:
        step_fn: (carry, per-step slices) -> (new carry, tuple of `outputs` tensors).
        sequences: tensors [time, ...], all with the same time length.
        carry: the initial carry [batch, units].
        outputs: how many per-step outputs step_fn returns.
        reverse: run from the last step to the first.
        unroll: steps per loop iteration (default _UNROLL).

    Returns:
        (final carry, tuple of outputs stacked over time [time, batch, units], in time order).
    """
    unroll = _UNROLL if unroll is None else unroll
    static_steps = sequences[0].shape[0]
    if static_steps is not None and static_steps <= max(unroll, _FULL_UNROLL_MAX):
        return _unrolled(step_fn, sequences, carry, 0, static_steps, outputs, reverse=reverse)

    steps = tf.shape(sequences[0])[0]
    chunks = steps // unroll
    leftover = steps - chunks * unroll
    # Forward: chunks cover [0, chunks * unroll), leftovers the end. Reverse: leftovers
    # are the first steps, so they run last.
    chunk_start = leftover if reverse else 0
    blocks = [
        tf.reshape(seq[chunk_start : chunk_start + chunks * unroll],
                   tf.concat([[chunks, unroll], tf.shape(seq)[1:]], 0))
        for seq in sequences
    ]
    element = tf.TensorShape([unroll]).concatenate(carry.shape)
    arrays = tuple(
        tf.TensorArray(carry.dtype, size=chunks, element_shape=element) for _ in range(outputs)
    )

    def body(c, carry, arrays):
        index = chunks - 1 - c if reverse else c
        per_step = [tf.unstack(block[index], num=unroll) for block in blocks]
        outs = [None] * unroll
        for j in range(unroll - 1, -1, -1) if reverse else range(unroll):
            carry, outs[j] = step_fn(carry, [values[j] for values in per_step])
        arrays = tuple(
            array.write(index, tf.stack([out[k] for out in outs]))
            for k, array in enumerate(arrays)
        )
        return c + 1, carry, arrays

    _, carry, arrays = tf.while_loop(
        lambda c, *_: c < chunks, body, (0, carry, arrays), parallel_iterations=1
    )
    flat_shape = tf.concat([[chunks * unroll], tf.shape(carry)], 0)
    chunked = [
        tf.reshape(_stack(array, chunks, carry, leading=(unroll,)), flat_shape) for array in arrays
    ]

    rest_start = 0 if reverse else chunks * unroll
    if static_steps is not None:
        carry, rest = _unrolled(step_fn, sequences, carry, rest_start, static_steps % unroll,
                                outputs, reverse=reverse)
    else:
        carry, rest = _stepwise(step_fn, sequences, carry, rest_start, leftover, outputs,
                                reverse=reverse)
    joined = tuple(
        tf.concat([r, c] if reverse else [c, r], 0) for c, r in zip(chunked, rest, strict=True)
    )
    return carry, joined


def _unrolled(step_fn, sequences, carry, start, count, outputs, *, reverse):
    """`count` steps from `start` written out in the graph (count is a Python int)."""
    if count == 0:
        empty = tf.zeros(tf.concat([[0], tf.shape(carry)], 0), carry.dtype)
        return carry, (empty,) * outputs
    outs = [None] * count
    for j in range(count - 1, -1, -1) if reverse else range(count):
        carry, outs[j] = step_fn(carry, [seq[start + j] for seq in sequences])
    return carry, tuple(tf.stack([out[k] for out in outs]) for k in range(outputs))


def _stepwise(step_fn, sequences, carry, start, count, outputs, *, reverse):
    """`count` steps from `start` in a plain tf.while_loop (count is a tensor)."""
    arrays = tuple(
        tf.TensorArray(carry.dtype, size=count, element_shape=carry.shape) for _ in range(outputs)
    )

    def body(i, carry, arrays):
        j = count - 1 - i if reverse else i
        carry, outs = step_fn(carry, [seq[start + j] for seq in sequences])
        return i + 1, carry, tuple(a.write(j, o) for a, o in zip(arrays, outs, strict=True))

    _, carry, arrays = tf.while_loop(
        lambda i, *_: i < count, body, (0, carry, arrays), parallel_iterations=1
    )
    return carry, tuple(_stack(a, count, carry) for a in arrays)


def _stack(array, size, carry, *, leading=()):
    """array.stack(), also when it is empty and the batch size is unknown (where
    TensorArray.stack fails): a sequence shorter than one chunk, or no leftover steps.
    Elements are [*leading, *carry.shape]."""
    empty_shape = tf.concat([[0, *leading], tf.shape(carry)], 0)
    return tf.cond(size > 0, array.stack, lambda: tf.zeros(empty_shape, carry.dtype))


def _project(inputs, kernel, bias):
    """x W_x + b for all steps as one product [T, B, F] -> [T, B, U] (MatMul + BiasAdd
    fuse into one op)."""
    flat = tf.reshape(inputs, [-1, tf.shape(inputs)[-1]])
    projected = tf.nn.bias_add(tf.matmul(flat, kernel), bias)
    projected = tf.reshape(projected, tf.concat([tf.shape(inputs)[:-1], [tf.shape(kernel)[-1]]], 0))
    # Keep the static length: the time loop writes out short sequences in full.
    return tf.ensure_shape(projected, inputs.shape[:-1].concatenate(kernel.shape[-1:]))


def _forward_loop(projected, recurrent_kernel, initial_state, mask, phi):
    """s(n) for n = 1..T; projected [T, B, U] = x W_x + b; mask [T, B, 1] bool or None."""
    sequences = [projected] if mask is None else [projected, mask]

    def step(state, slices):
        new_state = phi(slices[0] + tf.matmul(state, recurrent_kernel))
        if mask is not None:
            new_state = tf.where(slices[1], new_state, state)
        return new_state, (new_state,)

    _, (states,) = _scan(step, sequences, initial_state, outputs=1)
    return states


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
    return _backward_loop(
        d_states, recurrent_kernel, derivative=derivative, mask=mask, keep_carry=keep_carry,
        record_state_gradients=record_state_gradients,
    )


def _backward_loop(d_states, recurrent_kernel, *, derivative=None, states=None, fused=None,
                   mask=None, keep_carry=None, record_state_gradients=False, d_final=None):
    """backward_recursion with dA(n) from `derivative`, or from fused(s(n), G(n)) and
    `mask` (the fused op cannot know a step is masked).

    `d_final` [B, U] (or None) is the gradient reaching the final state s(T) on its own;
    with `d_states` None it is the only gradient from outside, so G(T) = d_final and each
    step saves an add.
    """
    transposed = tf.transpose(recurrent_kernel)
    final_only = d_states is None
    named = {
        "d_states": None if final_only else d_states,
        "local": derivative if fused is None else states,
        "mask": mask,
        # [T] -> [T, 1, 1] so each step's slice broadcasts against [B, U].
        "keep": None if keep_carry is None else tf.reshape(keep_carry, [-1, 1, 1]),
    }
    names = [name for name, value in named.items() if value is not None]

    def step(carry, slices):
        at = dict(zip(names, slices, strict=True))
        total = carry if final_only else at["d_states"] + carry
        if fused is None:
            d_a = total * at["local"]
        else:
            d_a = fused(at["local"], total)
            if mask is not None:
                d_a *= at["mask"]
        new_carry = tf.matmul(d_a, transposed)
        if mask is not None:
            new_carry += (1.0 - at["mask"]) * total
        if keep_carry is not None:
            new_carry *= at["keep"]
        return new_carry, ((d_a, total) if record_state_gradients else (d_a,))

    carry = tf.zeros_like(d_states[0]) if d_final is None else d_final
    d_initial, outputs = _scan(
        step, [named[name] for name in names], carry, reverse=True,
        outputs=2 if record_state_gradients else 1,
    )
    if record_state_gradients:
        return outputs[0], d_initial, outputs[1]
    return outputs[0], d_initial


def final_state(states: tf.Tensor, initial_state: tf.Tensor) -> tf.Tensor:
    """s(T) of time-major states, or s(0) when the sequence is empty (checked at run time
    only when the length is not known when tracing)."""
    steps = states.shape[0]
    if steps is not None and steps > 0:
        return states[-1]
    return tf.cond(tf.shape(states)[0] > 0, lambda: states[-1], lambda: initial_state)


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
    final_state_only: bool = False,
    return_final_state: bool = False,
    on_state_gradients: Callable[[tf.Tensor], None] | None = None,
):
    """All states s(1..T) of the recursion, with an explicit BPTT gradient.

    Args:
        inputs: [time, batch, features], time-major.
        kernel: W_x [features, units]. recurrent_kernel: W_s [units, units].
        bias: b [units] (zeros when the layer has no bias).
        initial_state: s(0) [batch, units].
        activation: phi, any elementwise Keras activation.
        mask: [time, batch] bool; masked steps hold the state.
        truncate_bptt: None, or k: the state's gradient is cut every k steps.
        final_state_only: a promise that nothing downstream uses the states (only the
            final state, return_final_state=True); the backward pass then starts from the
            final state's gradient alone and saves an add per step.
        return_final_state: also return s(T) (s(0) for an empty sequence) as its own
            tensor, whose gradient needs no [time, batch, units] scatter.
        on_state_gradients: the hook for recording: called in the backward pass with
            G(n) = dLoss/ds(n) [time, batch, units], the total gradient reaching each
            state (through the recursion and from outside it); see
            seqapps.layers.state_gradients.

    Returns:
        states [time, batch, units]; with return_final_state, (states, final state).
    """
    phi = resolve_activation(activation)
    mask3 = None if mask is None else tf.expand_dims(tf.cast(mask, tf.bool), -1)
    fused = _FUSED_BACKWARD.get(phi)

    @tf.custom_gradient
    def _recurrence(inputs, kernel, recurrent_kernel, bias, initial_state):
        projected = _project(inputs, kernel, bias)
        states = _forward_loop(projected, recurrent_kernel, initial_state, mask3, phi)
        final = final_state(states, initial_state)

        def grad(d_states, d_final):
            mask_float = None if mask3 is None else tf.cast(mask3, d_states.dtype)
            keep_carry = None
            if truncate_bptt is not None:
                step = tf.range(tf.shape(states)[0])
                # Cut the path from step n back to s(n-1) at every window start but the
                # first: s(0) belongs to the first window and keeps its gradient.
                keep = tf.logical_or(step % truncate_bptt != 0, step == 0)
                keep_carry = tf.cast(keep, d_states.dtype)
            derivative = None
            if fused is None:
                previous = tf.concat([initial_state[tf.newaxis], states[:-1]], axis=0)
                pre_activation = projected + tf.einsum("tbu,uv->tbv", previous, recurrent_kernel)
                derivative = activation_derivative(phi, pre_activation, states)
                if mask_float is not None:
                    derivative *= mask_float
            d_pre, d_initial, *totals = _backward_loop(
                None if final_state_only else d_states, recurrent_kernel, d_final=d_final,
                derivative=derivative, states=states, fused=fused, mask=mask_float,
                keep_carry=keep_carry, record_state_gradients=on_state_gradients is not None,
            )
            if on_state_gradients is not None:
                on_state_gradients(totals[0])
            d_inputs = tf.einsum("tbu,fu->tbf", d_pre, kernel)
            d_kernel = tf.einsum("tbf,tbu->fu", inputs, d_pre)
            # sum_n s(n-1)^T dA(n), split at n = 1 so no shifted copy of the states is made.
            d_recurrent = tf.einsum("tbu,tbv->uv", states[:-1], d_pre[1:]) + tf.matmul(
                initial_state, d_pre[0], transpose_a=True
            )
            d_bias = tf.reduce_sum(d_pre, axis=[0, 1])
            return d_inputs, d_kernel, d_recurrent, d_bias, d_initial

        return (states, final), grad

    states, final = _recurrence(inputs, kernel, recurrent_kernel, bias, initial_state)
    return (states, final) if return_final_state else states
