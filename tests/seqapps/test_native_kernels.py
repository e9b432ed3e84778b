"""The compiled training loops (seqapps.layers.native, bptt_native) against independent
references: keras SimpleRNN, float64 finite differences, and the TF graph loops of bptt.

These tests need the kernels built (g++ and the installed TensorFlow; `make` builds them).
If they cannot be built the tests fail with the compiler's reason, unless
SEQAPPS_NATIVE_KERNELS=0 says the kernels are deliberately off.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqapps.errors import ConfigError
from seqapps.layers import Recurrent, native
from seqapps.layers.bptt_native import native_ops

RNG = np.random.default_rng(11)
ACTIVATIONS = ["tanh", "relu", "sigmoid", "linear"]


@pytest.fixture(scope="module")
def ops():
    if not native.enabled():
        pytest.skip("SEQAPPS_NATIVE_KERNELS=0: the compiled kernels are off")
    return tf.load_op_library(str(native.build()))  # raises with the compiler's reason


def _graph_twin(layer):
    """The same layer (config and weights) with implementation="graph": TF graph loops
    in training too."""
    twin = Recurrent.from_config({**layer.get_config(), "implementation": "graph"})
    twin.build((None, None, layer.kernel.shape[0]))
    twin.set_weights(layer.get_weights())
    return twin


def _layer(units, features, dtype="float32", **kwargs):
    layer = Recurrent(units, dtype=dtype, **kwargs)
    layer.build((None, None, features))
    layer.set_weights([RNG.standard_normal(w.shape) * 0.4 for w in layer.get_weights()])
    return layer


def _run(layer, x, *, training=True, initial_state=None):
    """Outputs, final state and gradients of a loss that reads both."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        if initial_state is not None:
            tape.watch(initial_state)
        outputs, final = layer(x, training=training, initial_state=initial_state)
        weights = tf.sin(tf.reshape(tf.range(tf.size(outputs), dtype=outputs.dtype), tf.shape(outputs)))
        loss = tf.reduce_sum(weights * outputs) + 0.5 * tf.reduce_sum(tf.square(final))
    sources = [x] + list(layer.trainable_weights) + ([initial_state] if initial_state is not None else [])
    return [outputs, final] + tape.gradient(loss, sources)


def _sum_and_grads(layer, x):
    """sum(y) of a training call and its gradients to x and the weights."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, training=True))
    return [loss] + tape.gradient(loss, [x] + list(layer.trainable_weights))


def _uses_kernels(fn, *args) -> bool:
    graph = tf.function(fn).get_concrete_function(*args).graph
    names = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
        names |= {node.op for node in function.node_def}
    return "SeqappsRecurrenceForward" in names


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_training_step_equals_graph_loops_in_float64(ops, activation,
                                                     return_sequences, go_backwards):
    x = RNG.standard_normal((5, 9, 3))
    s0 = tf.constant(RNG.standard_normal((5, 4)) * 0.3)
    layer = _layer(4, 3, "float64", activation=activation, return_sequences=return_sequences,
                   go_backwards=go_backwards, return_state=True)
    native_result = _run(layer, x, initial_state=s0)
    graph_result = _run(_graph_twin(layer), x, initial_state=s0)
    for a, b in zip(native_result, graph_result, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batch, steps", [(1, 1), (3, 1), (2, 5), (5, 2), (33, 4)])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_odd_shapes_equal_graph_loops(ops, batch, steps, return_sequences):
    """One step, one row, and batches that split unevenly between threads: dW_s sums
    over the seams between sequences correctly."""
    x = RNG.standard_normal((batch, steps, 2))
    layer = _layer(3, 2, "float64", return_sequences=return_sequences, return_state=True)
    native_result = _run(layer, x)
    for a, b in zip(native_result, _run(_graph_twin(layer), x), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 20])
def test_truncated_bptt_equals_graph_loops(ops, k):
    x = RNG.standard_normal((3, 10, 2))
    layer = _layer(3, 2, "float64", return_sequences=True, return_state=True, truncate_bptt=k)
    native_result = _run(layer, x)
    for a, b in zip(native_result, _run(_graph_twin(layer), x), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_training_step_equals_simple_rnn(ops, activation, return_sequences, batch):
    """Independent reference: Keras' own SimpleRNN with the same weights, float32 1e-5."""
    ours = Recurrent(6, activation=activation, return_sequences=return_sequences)
    ref = keras.layers.SimpleRNN(6, activation=activation, return_sequences=return_sequences)
    for layer in (ours, ref):
        layer.build((None, None, 4))
    ours.set_weights([RNG.standard_normal(w.shape).astype("float32") * 0.5 for w in ours.get_weights()])
    ref.set_weights(ours.get_weights())
    x = tf.constant(RNG.standard_normal((batch, 12, 4)).astype("float32"))
    assert _uses_kernels(lambda v: ours(v, training=True), x)

    def outputs_and_grads(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cos(tf.reshape(tf.range(tf.size(y), dtype=y.dtype), tf.shape(y))) * y)
        return [y] + tape.gradient(loss, [x] + list(layer.trainable_weights))

    for a, b in zip(outputs_and_grads(ours), outputs_and_grads(ref), strict=True):
        # float32 sums of ~100 terms: 1e-5 relative to the tensor's largest value.
        scale = max(1.0, float(np.abs(b.numpy()).max()))
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_gradients_agree_with_float64_finite_differences(ops, activation):
    x = tf.constant(RNG.standard_normal((2, 6, 3)))
    layer = _layer(3, 3, "float64", activation=activation, return_sequences=True)

    def loss():
        return tf.reduce_sum(tf.sin(layer(x, training=True)))

    with tf.GradientTape() as tape:
        value = loss()
    grads = tape.gradient(value, layer.trainable_weights)
    for weight, grad in zip(layer.trainable_weights, grads, strict=True):
        original = weight.numpy()
        numeric = np.zeros_like(original)
        for index in np.ndindex(original.shape):
            for sign in (1, -1):
                shifted = original.copy()
                shifted[index] += sign * 1e-6
                weight.assign(shifted)
                numeric[index] += sign * float(loss()) / 2e-6
        weight.assign(original)
        np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-6, atol=1e-8)


def test_inference_and_export_graphs_hold_standard_ops_only(ops):
    """The kernels are for training steps: what TF Serving gets never needs them."""
    layer = _layer(4, 3)
    x = tf.constant(RNG.standard_normal((2, 5, 3)).astype("float32"))
    assert _uses_kernels(lambda v: layer(v, training=True), x)
    assert not _uses_kernels(lambda v: layer(v, training=False), x)
    assert not _uses_kernels(lambda v: layer(v), x)


def test_fallbacks_run_the_graph_loops(ops):
    """Masks, XLA and bfloat16 take the graph loops and still train."""
    layer = _layer(4, 3)
    x = tf.constant(RNG.standard_normal((2, 5, 3)).astype("float32"))
    mask = tf.constant([[True] * 5, [True, True, True, False, False]])
    assert not _uses_kernels(lambda v: layer(v, training=True, mask=mask), x)
    assert native_ops("tanh", tf.bfloat16) is None
    assert native_ops("softplus", tf.float32) is None

    seen = []

    @tf.function(jit_compile=True)
    def xla_step(v):
        seen.append(native_ops("tanh", tf.float32))
        return _sum_and_grads(layer, v)

    xla = xla_step(x)
    assert seen == [None]
    for a, b in zip(xla, _sum_and_grads(layer, x), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_model_fit_with_kernels_equals_fit_with_graph_loops(ops):
    x = RNG.standard_normal((32, 15, 3))
    y = RNG.standard_normal((32, 2))

    def fitted_weights(implementation):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((15, 3), dtype="float64"),
                                  Recurrent(5, dtype="float64", implementation=implementation),
                                  keras.layers.Dense(2, dtype="float64")])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    native_weights = fitted_weights("kernels")
    for a, b in zip(native_weights, fitted_weights("graph"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_kernels_handle_empty_sequences_and_name_bad_shapes(ops):
    s0 = tf.constant(RNG.standard_normal((2, 3)).astype("float32"))
    w_x, b, w_s = tf.ones([4, 3]), tf.zeros([3]), tf.eye(3)
    x = tf.zeros([2, 0, 4])
    states, final = ops.seqapps_recurrence_forward(x, w_x, b, w_s, s0, activation="tanh")
    assert states.shape == (2, 0, 3)
    np.testing.assert_array_equal(final.numpy(), s0.numpy())
    d_pre, d_initial, d_w_x, d_w_s, d_b = ops.seqapps_recurrence_backward(
        x, states, w_s, s0, tf.zeros([0, 0, 0]), tf.ones([2, 3]), activation="tanh")
    np.testing.assert_array_equal(d_initial.numpy(), np.ones((2, 3)))
    assert d_w_x.shape == (4, 3)
    assert not d_w_x.numpy().any() and not d_w_s.numpy().any() and not d_b.numpy().any()

    x = tf.zeros([2, 5, 4])
    with pytest.raises(tf.errors.InvalidArgumentError, match="kernel must be \\[4, units\\]"):
        ops.seqapps_recurrence_forward(x, tf.ones([3, 3]), b, w_s, s0, activation="tanh")
    with pytest.raises(tf.errors.InvalidArgumentError, match="recurrent_kernel must be \\[3, 3\\]"):
        ops.seqapps_recurrence_forward(x, w_x, b, tf.eye(2), s0, activation="tanh")
    with pytest.raises(tf.errors.InvalidArgumentError, match="initial_state must be \\[2, 3\\]"):
        ops.seqapps_recurrence_forward(x, w_x, b, w_s, tf.zeros([5, 3]), activation="tanh")
    with pytest.raises(tf.errors.InvalidArgumentError, match="activation must be"):
        ops.seqapps_recurrence_forward(x, w_x, b, w_s, s0, activation="softmax")


def test_unbuildable_kernels_warn_once_and_the_layer_still_trains(tmp_path, monkeypatch):
    """No compiler: one warning naming the failure, then the graph loops."""
    monkeypatch.setenv(native.CACHE_VARIABLE, str(tmp_path))
    monkeypatch.setenv("CXX", "/bin/false")
    native._load_library.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert native.load() is None
            assert native.load() is None
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(messages) == 1 and "recurrence_kernels.cc" in messages[0], messages
        assert not list(tmp_path.iterdir()), "a failed build leaves no partial file"

        layer = _layer(3, 2)
        x = tf.constant(RNG.standard_normal((2, 4, 2)).astype("float32"))
        assert all(g is not None for g in _sum_and_grads(layer, x))
    finally:
        native._load_library.cache_clear()


def test_cache_falls_back_to_temp_dir_when_home_cache_cannot_be_made(tmp_path, monkeypatch):
    # A path under a regular file cannot be created, even by root (unlike chmod).
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.delenv(native.CACHE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / ".cache"))
    assert native.cache_dir().parent == Path(tempfile.gettempdir())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert native.cache_dir() == tmp_path / "cache" / "seqapps" / "kernels"


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv(native.DISABLE_VARIABLE, "0")
    assert native.load() is None
    assert native_ops("tanh", tf.float32) is None
    # "auto" resolves to the graph loops; asking for the kernels says why they cannot run.
    x = tf.constant(RNG.standard_normal((2, 4, 3)).astype("float32"))
    layer = _layer(4, 3)
    assert not _uses_kernels(lambda v: layer(v, training=True), x)
    kernels = _layer(4, 3, implementation="kernels")
    assert kernels(x).shape == (2, 4)  # inference never needs them
    with pytest.raises(ConfigError, match=native.DISABLE_VARIABLE):
        kernels(x, training=True)


def test_implementation_is_one_public_argument(ops):
    x = tf.constant(RNG.standard_normal((2, 5, 3)).astype("float32"))
    for implementation, expected in (("auto", True), ("kernels", True), ("graph", False)):
        layer = _layer(4, 3, implementation=implementation)
        assert _uses_kernels(lambda v, layer=layer: layer(v, training=True), x) is expected
        assert not _uses_kernels(lambda v, layer=layer: layer(v, training=False), x)
        restored = Recurrent.from_config(layer.get_config())
        assert restored.implementation == implementation
    # Asked-for kernels that cannot run are an error naming the argument, not a fallback.
    with pytest.raises(ConfigError, match="`implementation`.*activations"):
        Recurrent(4, activation="softplus", implementation="kernels")
    with pytest.raises(ConfigError, match="`implementation`.*plain recursion"):
        Recurrent(4, normalize_preactivation=True, implementation="kernels")
    with pytest.raises(ConfigError, match="`implementation`.*float32"):
        Recurrent(4, dtype="bfloat16", implementation="kernels")
    kernels = _layer(4, 3, implementation="kernels")
    with pytest.raises(ConfigError, match="mask"):
        kernels(x, training=True, mask=tf.ones([2, 5], tf.bool))
    with pytest.raises(ConfigError, match="`implementation` must be one of"):
        Recurrent(4, implementation="cudnn")
