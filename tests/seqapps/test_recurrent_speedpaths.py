"""The fast paths of seqapps.layers.bptt against keras SimpleRNN and hand-built references.

The time loops run written out in the graph (short static lengths), as a tf.while_loop
over chunks of steps with the leftover steps written out (long static lengths), or with
the leftover steps in a plain loop (unknown lengths). The backward pass uses one fused op
per step for tanh / sigmoid / relu / linear and, for return_sequences=False, starts from
the final state's gradient alone. Each path is forced here with bptt.loop_settings, in
training steps of layers built with implementation="graph" (tests/seqapps/
test_native_kernels.py covers the compiled kernels).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqapps.layers import Recurrent, bptt

RNG = np.random.default_rng(3)

# (chunk, full-unroll limit): written out / chunked with 3 leftover steps of 11 / chunk
# longer than the sequence of 11 but no full unroll (all leftovers).
PATHS = {"written_out": (32, 128), "chunked": (4, 0), "leftover_only": (16, 0)}


@pytest.fixture(params=sorted(PATHS))
def loop_path(request):
    """Training steps through the TF graph loops (not the compiled kernels), one path each."""
    unroll, full = PATHS[request.param]
    with bptt.loop_settings(unroll=unroll, full_unroll_max=full):
        yield request.param


def _twins(units=5, features=4, **kwargs):
    """Recurrent (TF graph loops in training too) and SimpleRNN with the same weights."""
    ours = Recurrent(units, implementation="graph", **kwargs)
    ref = keras.layers.SimpleRNN(units, **kwargs)
    ours.build((None, None, features))
    ref.build((None, None, features))
    ours.set_weights([RNG.standard_normal(w.shape).astype("float32") * 0.5 for w in ours.get_weights()])
    ref.set_weights(ours.get_weights())
    return ours, ref


def _outputs_and_grads(layer, x, mask=None):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True, mask=None if mask is None else tf.constant(mask))
        weights = tf.reshape(tf.range(tf.size(y), dtype=y.dtype), tf.shape(y)) / 10.0
        loss = tf.reduce_sum(tf.sin(weights) * y)
    grads = tape.gradient(loss, [x] + list(layer.trainable_weights))
    return y.numpy(), [g.numpy() for g in grads]


def _assert_same(a, b):
    (y1, g1), (y2, g2) = a, b
    np.testing.assert_allclose(y1, y2, atol=1e-5)
    for u, v in zip(g1, g2, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5)  # float32, values up to ~100


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "linear", "softplus"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_every_loop_path_equals_simple_rnn(loop_path, activation, return_sequences):
    ours, ref = _twins(activation=activation, return_sequences=return_sequences)
    x = RNG.standard_normal((3, 11, 4)).astype("float32")
    _assert_same(_outputs_and_grads(ours, x), _outputs_and_grads(ref, x))


@pytest.mark.parametrize("return_sequences", [True, False])
def test_every_loop_path_with_mask_and_go_backwards_equals_simple_rnn(loop_path, return_sequences):
    ours, ref = _twins(return_sequences=return_sequences, go_backwards=True)
    x = RNG.standard_normal((3, 11, 4)).astype("float32")
    mask = np.arange(11)[None, :] < np.array([11, 6, 2])[:, None]
    _assert_same(_outputs_and_grads(ours, x, mask), _outputs_and_grads(ref, x, mask))


@pytest.mark.parametrize("steps", [1, 3, 8, 11, 21])
def test_unknown_length_in_one_traced_graph_equals_simple_rnn(steps):
    ours, ref = _twins(return_sequences=False)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
    def graph(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cos(ours(x)))
        return ours(x), tape.gradient(loss, [x] + ours.trainable_weights)

    x = RNG.standard_normal((2, steps, 4)).astype("float32")
    with bptt.loop_settings(unroll=4):
        y, grads = graph(tf.constant(x))
    x_ref = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_ref)
        loss = tf.reduce_sum(tf.cos(ref(x_ref)))
    ref_grads = tape.gradient(loss, [x_ref] + ref.trainable_weights)
    np.testing.assert_allclose(y, ref(x), atol=1e-5)
    for a, b in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_chunked_path_under_xla_equals_simple_rnn():
    ours, ref = _twins(return_sequences=True)
    x = tf.constant(RNG.standard_normal((2, 10, 4)).astype("float32"))

    def step(layer):
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        return y, tape.gradient(loss, layer.trainable_weights)

    with bptt.loop_settings(unroll=4, full_unroll_max=0):
        y, grads = tf.function(step, jit_compile=True)(ours)
    y_ref, grads_ref = step(ref)
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    for a, b in zip(grads, grads_ref, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_final_state_gradient_with_return_state_equals_simple_rnn():
    # return_sequences=False, return_state=True: both outputs are s(T), both carry gradient.
    ours, ref = _twins(return_state=True)
    x = tf.constant(RNG.standard_normal((3, 7, 4)).astype("float32"))
    results = []
    for layer in (ours, ref):
        with tf.GradientTape() as tape:
            out, final = layer(x, training=True)
            loss = tf.reduce_sum(out * tf.range(5.0)) + tf.reduce_sum(tf.square(final))
        results.append((out.numpy(), [g.numpy() for g in tape.gradient(loss, layer.trainable_weights)]))
    _assert_same(*results)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_recorded_state_gradients_equal_tape_gradients_of_each_state(path):
    """G(n) from backward_recursion against the tape's total gradient at every s(n) of a
    recursion written out by hand (eager, one tensor per step)."""
    unroll, full = PATHS[path]
    steps, batch, units = 11, 2, 3
    w_s = tf.constant(RNG.standard_normal((units, units)).astype("float32") * 0.6)
    drive = tf.constant(RNG.standard_normal((steps, batch, units)).astype("float32"))
    upstream = tf.constant(RNG.standard_normal((steps, batch, units)).astype("float32"))
    mask = tf.constant((RNG.random((steps, batch, 1)) > 0.3).astype("float32"))
    keep = tf.constant([1.0 if n % 4 else 0.0 for n in range(steps)])
    keep = tf.tensor_scatter_nd_update(keep, [[0]], [1.0])
    with tf.GradientTape(persistent=True) as tape:
        state, states = tf.zeros([batch, units]), []
        for n in range(steps):
            # A truncation cut: s(n-1) enters step n only through a stop_gradient.
            carried = state if keep[n] > 0 else tf.stop_gradient(state)
            tape.watch(carried)
            new = tf.tanh(drive[n] + carried @ w_s)
            state = mask[n] * new + (1.0 - mask[n]) * carried
            states.append(state)
        loss = tf.reduce_sum(upstream * tf.stack(states))
    expected = np.stack([tape.gradient(loss, s).numpy() for s in states])
    derivative = (1.0 - tf.square(tf.stack(states))) * mask
    with bptt.loop_settings(unroll=unroll, full_unroll_max=full):
        _, _, totals = bptt.backward_recursion(
            upstream, derivative, w_s, mask, keep, record_state_gradients=True
        )
    np.testing.assert_allclose(totals, expected, atol=1e-5)


def _recursions(layer, x, **kwargs) -> list[str]:
    """["recurrence"] when a call of `layer` runs bptt.recurrence, [] otherwise: its
    tf.custom_gradient puts an IdentityN op in the traced graph, forward_only has none."""
    graph = tf.function(lambda v: layer(v, **kwargs)).get_concrete_function(tf.constant(x)).graph
    return ["recurrence"] if "IdentityN" in {op.type for op in graph.get_operations()} else []


def test_inference_takes_forward_only_for_short_known_lengths():
    """Inference on a short sequence of known length runs bptt.forward_only (blocks of
    input projection, no custom gradient); longer or unknown lengths, masks and
    truncate_bptt keep bptt.recurrence. Equality with SimpleRNN on every path is tested
    in test_recurrent.py."""
    calls = []
    ours, ref = _twins(return_sequences=True)
    with bptt.loop_settings(full_unroll_max=8, projection_block=3):
        for steps, expected in ((1, []), (7, []), (8, []), (9, ["recurrence"])):
            calls.clear()
            x = RNG.standard_normal((2, steps, 4)).astype("float32")
            np.testing.assert_allclose(ours(x), ref(x), atol=1e-5)
            calls += _recursions(ours, x)
            assert calls == expected, steps
        calls.clear()
        calls += _recursions(ours, x[:, :5], mask=tf.ones([2, 5], tf.bool))
        truncated = Recurrent(5, truncate_bptt=2)
        calls += _recursions(truncated, x[:, :5])
    assert calls == ["recurrence", "recurrence"]


def test_public_loop_accessors_follow_loop_settings():
    """Recurrent reads the forward_only length limit through bptt.full_unroll_max(), so
    loop_settings (used above) reaches it; the values are the documented defaults."""
    assert (bptt.full_unroll_max(), bptt.projection_block()) == (128, 4)
    with bptt.loop_settings(full_unroll_max=8, projection_block=3):
        assert (bptt.full_unroll_max(), bptt.projection_block()) == (8, 3)
    assert (bptt.full_unroll_max(), bptt.projection_block()) == (128, 4)
