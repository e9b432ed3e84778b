"""Recurrent(normalize_preactivation=True) against a plain autodiff reference.

The reference is a Python loop of the formula in float64, differentiated by
tf.GradientTape; the layer's BPTT is written out by hand (bptt_normalized).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqapps.layers import Recurrent

RNG = np.random.default_rng(8)


def _reference(x, weights, *, activation, mask=None, epsilon=1e-3, s0=None):
    kernel, recurrent_kernel, bias, gamma, beta = weights
    phi = keras.activations.get(activation)
    state = tf.zeros([x.shape[0], kernel.shape[1]], tf.float64) if s0 is None else s0
    outputs = []
    for n in range(x.shape[1]):
        a = x[:, n] @ kernel + state @ recurrent_kernel + bias
        mean = tf.reduce_mean(a, -1, keepdims=True)
        variance = tf.reduce_mean((a - mean) ** 2, -1, keepdims=True)
        new = phi(gamma * (a - mean) / tf.sqrt(variance + epsilon) + beta)
        if mask is not None:
            new = tf.where(mask[:, n : n + 1], new, state)
        state = new
        outputs.append(state)
    return tf.stack(outputs, axis=1)


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
@pytest.mark.parametrize("masked", [False, True])
def test_outputs_and_gradients_equal_autodiff_reference(activation, masked):
    layer = Recurrent(5, activation=activation, return_sequences=True, normalize_preactivation=True,
                      dtype="float64")
    x = tf.constant(RNG.standard_normal((3, 7, 4)))
    layer.build(x.shape)
    layer.set_weights([RNG.standard_normal(w.shape) * 0.7 for w in layer.get_weights()])
    mask = tf.constant(np.arange(7)[None, :] < np.array([[7], [4], [1]])) if masked else None
    s0 = tf.constant(RNG.standard_normal((3, 5)))
    probe = tf.constant(RNG.standard_normal((3, 7, 5)))

    with tf.GradientTape() as tape:
        tape.watch([x, s0])
        ours = layer(x, mask=mask, initial_state=s0)
        loss = tf.reduce_sum(ours * probe)
    grads = tape.gradient(loss, [x, s0] + layer.trainable_weights)

    weights = [tf.Variable(w) for w in layer.get_weights()]
    with tf.GradientTape() as tape:
        tape.watch([x, s0])
        ref = _reference(x, weights, activation=activation, mask=mask, s0=s0)
        ref_loss = tf.reduce_sum(ref * probe)
    ref_grads = tape.gradient(ref_loss, [x, s0] + weights)

    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    names = ["x", "s0", "kernel", "recurrent_kernel", "bias", "gamma", "beta"]
    for name, g, r in zip(names, grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-8, atol=1e-10, err_msg=name)


def test_long_sequence_path_truncation_and_round_trip(tmp_path):
    """Over 128 steps the loop runs in chunks; truncation zeroes gradients beyond k."""
    layer = Recurrent(4, normalize_preactivation=True, truncate_bptt=10)
    x = tf.constant(RNG.standard_normal((2, 150, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(layer(x))
    g = tape.gradient(total, x).numpy()
    assert np.all(g[:, :140] == 0) and np.abs(g[:, -1]).max() > 0
    names = {w.name for w in layer.weights}
    assert {"preactivation_gamma", "preactivation_beta"} <= names
    model = keras.Sequential([keras.Input((None, 3)), layer])
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "m.keras")(x), model(x), atol=1e-6)
