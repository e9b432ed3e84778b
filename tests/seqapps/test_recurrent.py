"""seqapps.layers.Recurrent against independent references.

References: keras.layers.SimpleRNN (same weights), scipy.signal.lfilter (linear one-unit
case), keras.layers.Dense (W_s = 0), hand-computed goldens, float64 finite differences.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import scipy.signal
import tensorflow as tf

from seqapps.layers import Recurrent, SpectralRadius

RNG = np.random.default_rng(0)


def _x(batch=3, steps=6, features=4, dtype="float32"):
    return RNG.standard_normal((batch, steps, features)).astype(dtype)


def _twins(units=5, features=4, *, implementation="auto", **kwargs):
    """A Recurrent and a SimpleRNN built on the same input size with the same weights."""
    ours = Recurrent(units, implementation=implementation, **kwargs)
    ref = keras.layers.SimpleRNN(units, **kwargs)
    ours.build((None, None, features))
    ref.build((None, None, features))
    ours.set_weights([RNG.standard_normal(w.shape).astype("float32") * 0.5 for w in ours.get_weights()])
    ref.set_weights(ours.get_weights())
    return ours, ref


def _outputs_and_grads(layer, x, *, mask=None, initial_state=None, training=None):
    x = tf.convert_to_tensor(x)
    watched = [x] + ([initial_state] if initial_state is not None else [])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(watched)
        kwargs = {}
        if mask is not None:
            kwargs["mask"] = tf.constant(mask)
        if initial_state is not None:
            kwargs["initial_state"] = [initial_state] if isinstance(layer, keras.layers.SimpleRNN) else initial_state
        y = layer(x, training=training, **kwargs)
        # A weighted sum so every output element gets a different upstream gradient.
        weights = tf.reshape(tf.range(tf.size(y), dtype=y.dtype), tf.shape(y)) / 10.0
        loss = tf.reduce_sum(tf.sin(weights) * y)
    grads = tape.gradient(loss, watched + list(layer.trainable_weights))
    return y.numpy(), [g.numpy() for g in grads]


# --------------------------------------------------------------------- equality with SimpleRNN
# The layer has three ways through the recursion; each must equal SimpleRNN:
# inference (bptt.forward_only, autodiff gradients), training with the TF graph loops
# (bptt.recurrence, explicit BPTT), training with the compiled kernels (bptt_native).
PATHS = ["inference", "training_graph_loops", "training_kernels"]


@pytest.fixture(params=PATHS)
def layer_path(request):
    """The `implementation` the layer is built with and the `training` flag of its call."""
    implementation = "graph" if request.param == "training_graph_loops" else "auto"
    return {"implementation": implementation, "training": request.param != "inference"}


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_outputs_and_gradients_equal_simple_rnn(activation, return_sequences, go_backwards,
                                                layer_path):
    ours, ref = _twins(activation=activation, return_sequences=return_sequences,
                       go_backwards=go_backwards, implementation=layer_path["implementation"])
    x = _x()
    s0 = tf.constant(RNG.standard_normal((3, 5)).astype("float32"))
    y_ours, g_ours = _outputs_and_grads(ours, x, initial_state=s0, training=layer_path["training"])
    y_ref, g_ref = _outputs_and_grads(ref, x, initial_state=s0, training=layer_path["training"])
    np.testing.assert_allclose(y_ours, y_ref, atol=1e-5)
    assert len(g_ours) == 5  # x, s0, kernel, recurrent_kernel, bias
    for g1, g2 in zip(g_ours, g_ref, strict=True):
        np.testing.assert_allclose(g1, g2, atol=1e-5)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_masked_padding_equals_simple_rnn(return_sequences):
    ours, ref = _twins(return_sequences=return_sequences)
    x = _x(batch=3, steps=6)
    lengths = np.array([6, 4, 1])
    mask = np.arange(6)[None, :] < lengths[:, None]
    y_ours, g_ours = _outputs_and_grads(ours, x, mask=mask)
    y_ref, g_ref = _outputs_and_grads(ref, x, mask=mask)
    np.testing.assert_allclose(y_ours, y_ref, atol=1e-5)
    for g1, g2 in zip(g_ours, g_ref, strict=True):
        np.testing.assert_allclose(g1, g2, atol=1e-5)
    # Masked steps hold the state: the final state of row 1 is its state at step 4.
    full = Recurrent.from_config({**ours.get_config(), "return_sequences": True})
    full.build(x.shape)
    full.set_weights(ours.get_weights())
    states = full(x).numpy()
    final = y_ours if not return_sequences else y_ours[:, -1]
    np.testing.assert_allclose(final[1], states[1, 3], atol=1e-6)


def test_masked_steps_get_no_input_gradient():
    layer = Recurrent(3, return_sequences=True)
    x = _x(batch=2, steps=5, features=2)
    mask = np.array([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1]], bool)
    _, grads = _outputs_and_grads(layer, x, mask=mask)
    assert np.all(grads[0][0, 2] == 0) and np.all(grads[0][0, 4] == 0)
    assert np.any(grads[0][0, 3] != 0)


# --------------------------------------------------------------------- hand-computed goldens
def test_golden_values_with_constant_initializers():
    layer = Recurrent(
        2,
        activation="tanh",
        kernel_initializer=keras.initializers.Constant(0.1),
        recurrent_initializer=keras.initializers.Constant(0.2),
        bias_initializer=keras.initializers.Constant(0.05),
        return_sequences=True,
    )
    x = np.array([[[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]]], "float32")
    # By hand: both units identical; a(n) = 0.1 * sum(x(n)) + 0.2 * 2 * s(n-1) + 0.05.
    s, expected = 0.0, []
    for row in x[0]:
        s = np.tanh(0.1 * row.sum() + 0.4 * s + 0.05)
        expected.append([s, s])
    np.testing.assert_allclose(layer(x).numpy()[0], expected, rtol=1e-6)
    # The first step written out in full: tanh(0.1 * 3 + 0 + 0.05) = tanh(0.35).
    assert abs(layer(x).numpy()[0, 0, 0] - 0.3363755443363323) < 1e-6


def test_docstring_iir_example_value():
    layer = Recurrent(
        1,
        activation=None,
        use_bias=False,
        kernel_initializer="ones",
        recurrent_initializer=keras.initializers.Constant(0.5),
    )
    assert float(layer(np.ones((1, 3, 1), "float32"))[0, 0]) == pytest.approx(1.75)


# --------------------------------------------------------------------- the two special cases
def test_linear_single_unit_is_iir_filter():
    signal = RNG.standard_normal(200)
    w_x, w_s, b = 0.7, 0.9, 0.0
    layer = Recurrent(1, activation="linear", return_sequences=True, dtype="float64")
    layer.build((1, None, 1))
    # Assigned in float64: Constant initializers round through float32.
    layer.set_weights([np.array([[w_x]]), np.array([[w_s]]), np.array([b])])
    y = layer(signal.reshape(1, -1, 1)).numpy().ravel()
    np.testing.assert_allclose(y, scipy.signal.lfilter([w_x], [1.0, -w_s], signal), rtol=1e-10, atol=1e-12)


def test_zero_feedback_is_dense_at_every_step():
    layer = Recurrent(6, activation="relu", recurrent_initializer="zeros", return_sequences=True)
    x = _x(batch=2, steps=5, features=4)
    y = layer(x).numpy()
    dense = keras.layers.Dense(6, activation="relu")
    dense.build((None, 4))
    dense.set_weights([layer.kernel.numpy(), layer.bias.numpy()])
    np.testing.assert_allclose(y, dense(x).numpy(), atol=1e-6)


# --------------------------------------------------------------------- state carry
def test_chunked_with_state_carry_equals_whole_sequence():
    layer = Recurrent(5, return_sequences=True, return_state=True)
    x = _x(batch=2, steps=12, features=4)
    whole, whole_final = layer(x)
    state, pieces = None, []
    for start in range(0, 12, 5):  # chunks of 5, 5, 2
        out, state = layer(x[:, start : start + 5], initial_state=state)
        pieces.append(out)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, atol=1e-5)
    np.testing.assert_allclose(state, whole_final, atol=1e-5)


def test_stateful_two_batches_equal_joined_sequence_and_reset_restores_s0():
    x = _x(batch=2, steps=8, features=3)
    stateful = Recurrent(4, return_sequences=True, stateful=True, learn_initial_state=True)
    stateful.build(x.shape)
    stateful.initial_state.assign(np.full(4, 0.3, "float32"))
    stateful.reset_state()
    plain = Recurrent(4, return_sequences=True, learn_initial_state=True)
    plain.build(x.shape)
    plain.set_weights(stateful.get_weights()[:4])
    joined = plain(x).numpy()
    first, second = stateful(x[:, :5]).numpy(), stateful(x[:, 5:]).numpy()
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), joined, atol=1e-5)
    stateful.reset_state()
    np.testing.assert_allclose(stateful.state.numpy(), np.full((2, 4), 0.3), atol=1e-7)
    np.testing.assert_allclose(stateful(x[:, :5]).numpy(), first, atol=1e-6)


def test_learned_initial_state_receives_gradient():
    layer = Recurrent(3, learn_initial_state=True)
    x = _x(batch=2, steps=4, features=2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x))
    grad = tape.gradient(loss, layer.initial_state)
    assert grad is not None and np.any(grad.numpy() != 0)
    assert {w.name for w in layer.trainable_weights} == {"kernel", "recurrent_kernel", "bias", "initial_state"}


# --------------------------------------------------------------------- truncated BPTT
def _input_gradient_of_last_output(layer, x):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(layer(x)[:, -1])
    return tape.gradient(y, x).numpy()


@pytest.mark.parametrize("k", [1, 3, 4])
def test_truncated_bptt_cuts_gradient_beyond_k_steps(k):
    steps = 12
    x = _x(batch=2, steps=steps, features=3)
    full = Recurrent(4, return_sequences=True)
    full.build(x.shape)
    truncated = Recurrent(4, return_sequences=True, truncate_bptt=k)
    truncated.build(x.shape)
    truncated.set_weights(full.get_weights())
    g = _input_gradient_of_last_output(truncated, x)
    too_far = np.abs(g[:, : steps - k]).max()
    assert too_far == 0.0
    assert np.abs(g[:, -1]).max() > 0
    np.testing.assert_allclose(truncated(x), full(x), atol=1e-6)  # the forward pass is unchanged


def test_truncated_bptt_with_k_at_least_T_equals_full_gradient():
    x = _x(batch=2, steps=6, features=3)
    full = Recurrent(4)
    full.build(x.shape)
    for k in (6, 50):
        truncated = Recurrent(4, truncate_bptt=k)
        truncated.build(x.shape)
        truncated.set_weights(full.get_weights())
        _, g_full = _outputs_and_grads(full, x)
        _, g_trunc = _outputs_and_grads(truncated, x)
        for a, b in zip(g_full, g_trunc, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)


# --------------------------------------------------------------------- finite differences
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus"])
def test_gradients_agree_with_float64_finite_differences(activation):
    layer = Recurrent(3, activation=activation, return_sequences=True, learn_initial_state=True, dtype="float64")
    x = RNG.standard_normal((2, 5, 2))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    layer.build(x.shape)
    layer.initial_state.assign(RNG.standard_normal(3) * 0.3)
    x_t = tf.constant(x)

    def loss_fn(x_value):
        y = layer(x_value, mask=tf.constant(mask))
        return tf.reduce_sum(tf.cos(tf.range(tf.size(y), dtype=tf.float64)) * tf.reshape(y, [-1]))

    with tf.GradientTape() as tape:
        tape.watch(x_t)
        loss = loss_fn(x_t)
    analytic = tape.gradient(loss, [x_t] + layer.trainable_weights)
    eps = 1e-6
    targets = [None] + layer.trainable_weights
    for target, grad in zip(targets, analytic, strict=True):
        base = x.copy() if target is None else target.numpy().copy()
        numeric = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            values = []
            for sign in (1, -1):
                bumped = base.copy()
                bumped[idx] += sign * eps
                if target is None:
                    values.append(float(loss_fn(tf.constant(bumped))))
                else:
                    target.assign(bumped)
                    values.append(float(loss_fn(x_t)))
            numeric[idx] = (values[0] - values[1]) / (2 * eps)
        if target is not None:
            target.assign(base)
        np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------- initializers
def test_identity_and_spectral_radius_initializers():
    irnn = Recurrent(6, activation="relu", recurrent_initializer="identity")
    irnn.build((None, None, 2))
    np.testing.assert_array_equal(irnn.recurrent_kernel.numpy(), np.eye(6))
    scaled = Recurrent(16, recurrent_initializer=("spectral_radius", 0.8))
    scaled.build((None, None, 2))
    radius = np.abs(np.linalg.eigvals(scaled.recurrent_kernel.numpy())).max()
    assert radius == pytest.approx(0.8, rel=1e-5)
    config = scaled.get_config()
    restored = Recurrent.from_config(config)
    assert isinstance(restored.recurrent_initializer, SpectralRadius)
    orthogonal = Recurrent(8)
    orthogonal.build((None, None, 2))
    w = orthogonal.recurrent_kernel.numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(8), atol=1e-5)


# --------------------------------------------------------------------- execution modes
def _model(**kwargs):
    inputs = keras.Input((None, 4))
    outputs = keras.layers.Dense(2)(Recurrent(5, **kwargs)(inputs))
    return keras.Model(inputs, outputs)


def test_tf_function_and_xla_match_eager_with_dynamic_shapes():
    layer = Recurrent(5, return_sequences=True, truncate_bptt=3)
    x = _x(batch=3, steps=7)
    layer.build(x.shape)

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        return y, tape.gradient(loss, [x] + layer.trainable_weights)

    eager_y, eager_g = step(tf.constant(x))
    graph = tf.function(step, reduce_retracing=True)
    xla = tf.function(step, jit_compile=True)
    for fn in (graph, xla):
        y, g = fn(tf.constant(x))
        np.testing.assert_allclose(y, eager_y, atol=1e-5)
        for a, b in zip(g, eager_g, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
    # Dynamic batch and length through one traced graph.
    dynamic = tf.function(step, input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
    for shape in [(1, 3, 4), (5, 11, 4), (2, 1, 4)]:
        x2 = _x(*shape)
        y, _ = dynamic(tf.constant(x2))
        np.testing.assert_allclose(y, layer(x2), atol=1e-5)


def test_model_fits_with_jit_compile_and_reduces_loss():
    model = _model()
    x, y = _x(batch=32, steps=6), RNG.standard_normal((32, 2)).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", jit_compile=True)
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]


def test_mixed_precision_bfloat16():
    layer = Recurrent(4, dtype="mixed_bfloat16", return_sequences=True)
    x = _x()
    with tf.GradientTape() as tape:
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float32))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert y.dtype == tf.bfloat16
    assert all(g.dtype == tf.float32 for g in grads)
    ref = Recurrent(4, return_sequences=True)
    ref.build(x.shape)
    ref.set_weights(layer.get_weights())
    np.testing.assert_allclose(tf.cast(y, tf.float32), ref(x), atol=0.05)


def test_keras_and_savedmodel_round_trip(tmp_path):
    model = _model(return_sequences=False, learn_initial_state=True, truncate_bptt=4)
    x = _x()
    expected = model(x).numpy()
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(restored(x), expected, atol=1e-6)
    assert restored.layers[1].get_config() == model.layers[1].get_config()
    model.export(str(tmp_path / "saved"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(loaded.serve(tf.constant(x)), expected, atol=1e-6)


def test_dropout_only_in_training_and_same_features_every_step():
    layer = Recurrent(3, dropout=0.5, recurrent_initializer="zeros", use_bias=False,
                      return_sequences=True, seed=7)
    x = np.ones((4, 5, 6), "float32")
    np.testing.assert_allclose(layer(x, training=False), layer(x), atol=0)
    y = layer(x, training=True).numpy()
    # With W_s = 0 every step sees the same dropped features, so outputs repeat over time.
    np.testing.assert_allclose(y, np.repeat(y[:, :1], 5, axis=1), atol=1e-6)
    assert not np.allclose(y, layer(x).numpy())


DISTRIBUTED = textwrap.dedent(
    """
    import os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from seqapps.layers import Recurrent

    def train(strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            inputs = keras.Input((5, 3))
            model = keras.Model(inputs, keras.layers.Dense(1)(Recurrent(4)(inputs)))
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((16, 5, 3)).astype("float32"), rng.standard_normal((16, 1)).astype("float32")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    a, b = train(mirrored), train(tf.distribute.get_strategy())
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, atol=1e-5)
    print("same weights")
    """
)


def test_mirrored_strategy_on_two_logical_cpus_matches_default_strategy(tmp_path):
    script = tmp_path / "distributed.py"
    script.write_text(DISTRIBUTED)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "same weights" in result.stdout


# --------------------------------------------------------------------- bad arguments and inputs
@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"units": 0}, "units=0"),
        ({"units": -3}, "units=-3"),
        ({"units": 2.5}, "units=2.5"),
        ({"units": 4, "activation": "no_such_activation"}, "activation='no_such_activation'"),
        ({"units": 4, "activation": "softmax"}, "activation='softmax'"),
        ({"units": 4, "dropout": 1.0}, "dropout=1.0"),
        ({"units": 4, "truncate_bptt": 0}, "truncate_bptt=0"),
    ],
)
def test_bad_arguments_name_the_argument_and_value(kwargs, fragment):
    with pytest.raises(ValueError, match="`" + fragment.split("=")[0] + "`") as err:
        Recurrent(**kwargs)
    assert fragment in str(err.value)


def test_bad_inputs_name_the_argument_and_value():
    layer = Recurrent(4)
    with pytest.raises(ValueError, match=r"`inputs.shape` must be of rank 3.*inputs.shape=\(2, 3\)"):
        layer(np.zeros((2, 3), "float32"))
    layer(np.zeros((2, 3, 5), "float32"))
    with pytest.raises(ValueError, match=r"`inputs.shape` must be \[batch, time, 5\].*=\(2, 3, 6\)"):
        layer(np.zeros((2, 3, 6), "float32"))
    with pytest.raises(ValueError, match=r"`initial_state.shape` must be \[batch, 4\].*=\(2, 3\)"):
        layer(np.zeros((2, 3, 5), "float32"), initial_state=np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="`batch_size`"):
        Recurrent(4, stateful=True).build((None, 3, 5))


def test_empty_sequence_keeps_the_state_and_differentiates():
    layer = Recurrent(3, return_state=True, learn_initial_state=True)
    empty = tf.zeros((2, 0, 4))
    outputs, state = layer(empty)
    np.testing.assert_array_equal(state, np.zeros((2, 3)))
    with tf.GradientTape() as tape:
        _, state = layer(empty)
        loss = tf.reduce_sum(state)
    grad = tape.gradient(loss, layer.initial_state)
    np.testing.assert_allclose(grad, [2.0, 2.0, 2.0])  # d/ds0 of the sum over a batch of 2
    assert Recurrent(3, return_sequences=True)(empty).shape == (2, 0, 3)


def test_implementation_round_trips_and_old_configs_without_it_load():
    layer = Recurrent(3, implementation="graph")
    config = layer.get_config()
    assert config["implementation"] == "graph"
    assert Recurrent.from_config(config).implementation == "graph"
    del config["implementation"]  # as in a .keras file written before the argument existed
    assert Recurrent.from_config(config).implementation == "auto"
