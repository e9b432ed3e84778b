"""seqapps.diagnostics against an unrolled float64 reference watched with tf.GradientTape."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqapps.diagnostics import (
    diagnose,
    gradient_report,
    recurrent_layers,
    summarize_norms,
    write_report,
)
from seqapps.errors import ConfigError
from seqapps.layers import Recurrent

PHI = {"tanh": tf.tanh, "relu": tf.nn.relu, "linear": lambda a: a}


def _f64(variable):
    return tf.constant(keras.ops.convert_to_numpy(variable), tf.float64)


def _unrolled(tape, inputs, layer, phi, *, mask=None, initial=None):
    """s(1..T) of `layer` as a Python loop in float64, each s(n) watched by `tape`.

    inputs: list of [batch, features] tensors in processing order; mask: list of
    [batch, 1] bool or None. Truncated BPTT cuts the use of s(n-1) at every k-th step.
    """
    kernel, recurrent_kernel = _f64(layer.kernel), _f64(layer.recurrent_kernel)
    bias = _f64(layer.bias) if layer.use_bias else tf.zeros([layer.units], tf.float64)
    state = tf.zeros([inputs[0].shape[0], layer.units], tf.float64) if initial is None else initial
    states = []
    for n, x_n in enumerate(inputs):
        previous = state
        if layer.truncate_bptt and n > 0 and n % layer.truncate_bptt == 0:
            previous = tf.stop_gradient(state)
        a = x_n @ kernel + previous @ recurrent_kernel + bias
        if layer.normalize_preactivation:  # Ba et al. 2016, epsilon 1e-3 as the layer
            mean, variance = tf.nn.moments(a, axes=[-1], keepdims=True)
            a = _f64(layer.preactivation_gamma) * (a - mean) / tf.sqrt(variance + 1e-3) + _f64(
                layer.preactivation_beta)
        new = phi(a)
        state = new if mask is None else tf.where(mask[n], new, previous)
        tape.watch(state)
        states.append(state)
    return states


def _norms(gradients):
    return np.array([np.linalg.norm(g.numpy()) for g in gradients])


def test_single_layer_norms_match_unrolled_reference_with_mask_backwards_and_learned_s0():
    batch, steps, features, units = 3, 12, 2, 5
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    x[0, 9:] = 0.0  # padding, masked by keras.layers.Masking
    x[2, 5:] = 0.0
    y = rng.normal(size=(batch, 1)).astype("float32")
    layer = Recurrent(units, go_backwards=True, learn_initial_state=True)
    head = keras.layers.Dense(1)
    model = keras.Sequential([keras.Input((steps, features)), keras.layers.Masking(0.0), layer, head])
    layer.initial_state.assign(rng.normal(size=units).astype("float32"))

    report = gradient_report(model, x, y, loss="mse")
    got = np.array(report["layers"][0]["gradient_norms"])

    reversed_x = tf.constant(x[:, ::-1], tf.float64)
    present = np.any(x[:, ::-1] != 0, axis=-1)
    with tf.GradientTape(persistent=True) as tape:
        initial = tf.broadcast_to(_f64(layer.initial_state)[tf.newaxis], [batch, units])
        states = _unrolled(
            tape, [reversed_x[:, n] for n in range(steps)], layer, tf.tanh,
            mask=[tf.constant(present[:, n : n + 1]) for n in range(steps)], initial=initial,
        )
        prediction = states[-1] @ _f64(head.kernel) + _f64(head.bias)
        loss = tf.reduce_mean(tf.square(prediction - tf.constant(y, tf.float64)))
    want = _norms(tape.gradient(loss, states))

    assert report["layers"][0]["steps"] == steps
    np.testing.assert_allclose(got, want, rtol=2e-4)
    assert report["loss"] == pytest.approx(float(loss), rel=1e-5)


def test_stacked_nested_layers_include_the_path_through_the_upper_layer():
    """Lower layer inside a nested Sequential; upper layer relu with truncated BPTT;
    a loss at every step, so dLoss/d(states) from outside the recursion is non-zero
    at every step and the lower layer's gradient flows through the upper recursion."""
    batch, steps, features = 2, 10, 3
    rng = np.random.default_rng(1)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    y = rng.normal(size=(batch, steps, 1)).astype("float32")
    lower = Recurrent(4, return_sequences=True)
    upper = Recurrent(3, activation="relu", return_sequences=True, truncate_bptt=4,
                      recurrent_initializer=("spectral_radius", 0.95),
                      bias_initializer=keras.initializers.Constant(0.3))
    head = keras.layers.Dense(1)
    inputs = keras.Input((steps, features))
    hidden = keras.Sequential([lower], name="inner")(inputs)
    model = keras.Model(inputs, head(upper(hidden)))
    model.compile(loss="mse")

    assert recurrent_layers(model) == [lower, upper]
    report = gradient_report(model, x, y)  # the compiled loss

    x64 = tf.constant(x, tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        lower_states = _unrolled(tape, [x64[:, n] for n in range(steps)], lower, tf.tanh)
        upper_states = _unrolled(tape, lower_states, upper, tf.nn.relu)
        prediction = tf.stack(upper_states, 1) @ _f64(head.kernel) + _f64(head.bias)
        loss = tf.reduce_mean(tf.square(prediction - tf.constant(y, tf.float64)))
    for entry, states in zip(report["layers"], (lower_states, upper_states), strict=True):
        want = _norms(tape.gradient(loss, states))
        np.testing.assert_allclose(entry["gradient_norms"], want, rtol=2e-4)
    assert report["layers"][1]["truncate_bptt"] == 4
    np.testing.assert_allclose(
        report["layers"][0]["singular_values"],
        np.linalg.svd(keras.ops.convert_to_numpy(lower.recurrent_kernel), compute_uv=False),
        rtol=1e-6,
    )


def _many_to_one(recurrent, steps):
    return keras.Sequential([keras.Input((steps, 1)), recurrent, keras.layers.Dense(1)])


def test_identity_relu_keeps_the_ratio_near_one_where_small_random_w_s_vanishes():
    steps = 40
    rng = np.random.default_rng(2)
    x = rng.uniform(0.0, 1.0, size=(4, steps, 1)).astype("float32")
    y = np.ones((4, 1), "float32")
    positive = keras.initializers.RandomUniform(0.05, 0.5, seed=3)
    irnn = _many_to_one(Recurrent(8, activation="relu", recurrent_initializer="identity",
                                  kernel_initializer=positive), steps)
    small = _many_to_one(Recurrent(8, recurrent_initializer=keras.initializers.RandomNormal(
        stddev=0.05, seed=4)), steps)

    kept = gradient_report(irnn, x, y, loss="mse")["layers"][0]["summary"]
    vanished = gradient_report(small, x, y, loss="mse")["layers"][0]["summary"]

    assert 0.5 < kept["first_to_last_ratio"] < 2.0
    assert kept["memory_horizon"] == steps and kept["reaches_first_step"]
    assert vanished["first_to_last_ratio"] < 1e-6
    assert vanished["memory_horizon"] < 10


def test_write_report_and_diagnose_write_json_and_png_holding_the_values(tmp_path):
    steps = 15
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, steps, 1)).astype("float32")
    y = rng.normal(size=(6, 1)).astype("float32")
    model = keras.Sequential([keras.Input((steps, 1)), Recurrent(4, return_sequences=True),
                              Recurrent(3), keras.layers.Dense(1)])
    model.compile(loss="mse")

    result = diagnose(model, x, y, out_dir=tmp_path / "out", max_examples=4)
    assert result["report"]["batch_size"] == 4
    written = json.loads(result["json"].read_text())
    assert [layer["name"] for layer in written["layers"]] == [
        layer.name for layer in recurrent_layers(model)
    ]
    for saved, entry in zip(written["layers"], result["report"]["layers"], strict=True):
        np.testing.assert_allclose(saved["gradient_norms"], entry["gradient_norms"])
        assert saved["summary"]["memory_horizon"] == entry["summary"]["memory_horizon"]
    assert result["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(result["png"]).shape[0] > 100
    assert "first/last" in result["text"]

    # Non-finite numbers are written as null, so strict JSON readers accept the file.
    report = result["report"]
    report["layers"][0]["summary"]["first_to_last_ratio"] = float("inf")
    json_path, _ = write_report(report, tmp_path / "again")
    assert json.loads(json_path.read_text())["layers"][0]["summary"]["first_to_last_ratio"] is None


def test_summarize_norms_hand_computed():
    halving = 0.5 ** np.arange(19, -1, -1)  # largest at the last step, halves each step back
    summary = summarize_norms(halving)
    assert summary["memory_horizon"] == 10  # 0.5**9 >= 1e-3 > 0.5**10
    assert summary["first_to_last_ratio"] == pytest.approx(0.5**19)
    assert summary["peak_step"] == 20 and not summary["reaches_first_step"]
    flat = summarize_norms([2.0, 2.0, 2.0])
    assert flat["memory_horizon"] == 3 and flat["reaches_first_step"]
    assert summarize_norms([1.0, 0.0])["first_to_last_ratio"] == float("inf")
    assert summarize_norms([1.0, 0.0])["memory_horizon"] == 0
    diverged = summarize_norms([1.0, float("nan"), 2.0])
    assert not diverged["finite"] and diverged["memory_horizon"] == 0
    assert flat["finite"]


def test_a_diverged_model_is_reported_not_raised(tmp_path):
    layer = Recurrent(3)
    model = _many_to_one(layer, 5)
    layer.recurrent_kernel.assign(np.full((3, 3), np.nan, "float32"))
    report = gradient_report(model, np.ones((2, 5, 1), "float32"), np.ones((2, 1), "float32"),
                             loss="mse")
    entry = report["layers"][0]
    assert not entry["summary"]["finite"] and np.isnan(entry["spectral_radius"])
    json_path, png_path = write_report(report, tmp_path)
    assert json.loads(json_path.read_text())["layers"][0]["spectral_radius"] is None
    assert png_path.exists()


def test_errors_name_the_problem():
    model = _many_to_one(Recurrent(2), 5)
    x, y = np.ones((1, 5, 1), "float32"), np.ones((1, 1), "float32")
    with pytest.raises(ConfigError, match="`loss`"):
        gradient_report(model, x, y)
    dense = keras.Sequential([keras.Input((5, 1)), keras.layers.Dense(1)])
    with pytest.raises(ConfigError, match="Recurrent"):
        gradient_report(dense, x, y, loss="mse")
    with pytest.raises(ConfigError, match="max_examples"):
        diagnose(model, x, y, out_dir="unused", loss="mse", max_examples=0)


def test_stateful_state_is_left_as_it_was():
    layer = Recurrent(3, stateful=True)
    model = keras.Sequential([keras.Input((4, 1), batch_size=2), layer, keras.layers.Dense(1)])
    layer.state.assign(np.full((2, 3), 0.25, "float32"))
    gradient_report(model, np.ones((2, 4, 1), "float32"), np.ones((2, 1), "float32"), loss="mse")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.state), 0.25)


def test_a_saved_and_loaded_model_gives_the_same_report_and_shared_layers_appear_per_call(tmp_path):
    steps = 8
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, steps, 2)).astype("float32")
    y = rng.normal(size=(3, 1)).astype("float32")
    shared = Recurrent(2, return_sequences=True)
    inputs = keras.Input((steps, 2))
    outputs = keras.layers.Dense(1)(Recurrent(3)(shared(shared(inputs))))
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")

    before = gradient_report(model, x, y, loss="mse")
    after = gradient_report(loaded, x, y, loss="mse")
    assert [entry["name"] for entry in before["layers"]] == [
        shared.name, f"{shared.name}#2", model.layers[-2].name
    ]
    for a, b in zip(before["layers"], after["layers"], strict=True):
        np.testing.assert_allclose(a["gradient_norms"], b["gradient_norms"], rtol=1e-6)


def test_normalized_preactivation_norms_match_unrolled_reference():
    """Layers with normalize_preactivation record G(n) through their own backward recursion."""
    batch, steps, features, units = 2, 9, 3, 4
    rng = np.random.default_rng(5)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    y = rng.normal(size=(batch, 1)).astype("float32")
    layer = Recurrent(units, normalize_preactivation=True)
    head = keras.layers.Dense(1)
    model = keras.Sequential([keras.Input((steps, features)), layer, head])
    layer.preactivation_gamma.assign(rng.uniform(0.5, 1.5, size=units).astype("float32"))
    layer.preactivation_beta.assign(rng.normal(size=units).astype("float32") * 0.1)

    report = gradient_report(model, x, y, loss="mse")

    x64 = tf.constant(x, tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        states = _unrolled(tape, [x64[:, n] for n in range(steps)], layer, tf.tanh)
        prediction = states[-1] @ _f64(head.kernel) + _f64(head.bias)
        loss = tf.reduce_mean(tf.square(prediction - tf.constant(y, tf.float64)))
    want = _norms(tape.gradient(loss, states))
    np.testing.assert_allclose(report["layers"][0]["gradient_norms"], want, rtol=2e-4)
    assert 0 < want[0] < want[-1]  # the gradient reaches step 1, smaller than at step T


def test_recording_patches_nothing_and_leaves_the_layer_as_it_was():
    from seqapps.layers import recurrent as recurrent_module

    layer = Recurrent(3)
    model = _many_to_one(layer, 6)
    functions = (recurrent_module.recurrence, type(layer).call)
    gradient_report(model, np.ones((2, 6, 1), "float32"), np.ones((2, 1), "float32"), loss="mse")
    assert (recurrent_module.recurrence, type(layer).call) == functions
    assert "call" not in vars(layer)
