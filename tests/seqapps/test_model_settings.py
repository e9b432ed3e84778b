"""Model settings: bidirectional and stacked recurrences (against keras SimpleRNN), the
export of a bidirectional model (no stream signature), label smoothing (against Keras'
CategoricalCrossentropy) and the learning-rate schedules."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from seqapps.errors import ConfigError
from seqapps.tasks import SequenceClassifier
from seqapps.training import SparseSmoothedCrossentropy, fit, learning_rate_callback

RNG = np.random.default_rng(2)


def _simple_rnn_like(layer, *, go_backwards):
    reference = keras.layers.SimpleRNN(layer.units, return_sequences=True, go_backwards=go_backwards)
    reference.build((None, None, layer.kernel.shape[0]))
    reference.set_weights([np.asarray(layer.kernel), np.asarray(layer.recurrent_kernel), np.asarray(layer.bias)])
    return reference


@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_bidirectional_states_are_forward_and_time_aligned_backward_simple_rnn(merge_mode):
    model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4, num_layers=2, dropout=0.0,
                               bidirectional=True, merge_mode=merge_mode)
    x = RNG.normal(size=(2, 7, 3)).astype("float32")
    states = model.recurrent_states(model.normalization(x))  # normalisation is the identity here
    layer_input = x
    for i in range(2):
        forward = np.asarray(_simple_rnn_like(model.recurrent_layers[i], go_backwards=False)(layer_input))
        backward = np.asarray(_simple_rnn_like(model.backward_layers[i], go_backwards=True)(layer_input))[:, ::-1]
        expected = np.concatenate([forward, backward], -1) if merge_mode == "concat" else forward + backward
        np.testing.assert_allclose(np.asarray(states[i]), expected, atol=1e-5)
        layer_input = expected
    width = 8 if merge_mode == "concat" else 4
    assert model.layer_width == width and states[-1].shape[-1] == width


def test_bidirectional_with_padding_equals_the_unpadded_clip():
    model = SequenceClassifier(num_classes=3, input_shape=(None, 3), units=5, dropout=0.0, bidirectional=True)
    x = RNG.normal(size=(1, 6, 3)).astype("float32")
    padded = np.concatenate([x, np.zeros((1, 4, 3), "float32")], axis=1)
    mask = np.array([[True] * 6 + [False] * 4])
    np.testing.assert_allclose(np.asarray(model({"features": padded, "mask": mask})),
                               np.asarray(model({"features": x})), atol=1e-5)


def test_bidirectional_round_trips_exports_without_stream_and_refuses_to_stream(tmp_path):
    from seqapps.export import export_model
    from seqapps.exported import SIGNATURE_STREAM, load_exported

    model = SequenceClassifier(num_classes=2, class_names=["a", "b"], input_shape=(None, 3), units=4,
                               num_layers=2, bidirectional=True)
    model.compile()
    x = RNG.normal(size=(2, 5, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(loaded({"features": x})), np.asarray(model({"features": x})), atol=1e-6)
    assert not model.can_stream
    with pytest.raises(ConfigError, match="bidirectional model cannot stream"):
        model.stream(x, np.zeros((2, 2, 4), "float32"))
    path = export_model(model, base_dir=tmp_path / "saved", name="bi", preprocessing={"kind": "features"},
                        warmup_examples=1)
    exported = load_exported(path)
    assert SIGNATURE_STREAM not in exported.signatures and exported.state_shape is None
    np.testing.assert_allclose(exported.features(x)["probabilities"], np.asarray(model({"features": x})), atol=1e-5)
    with pytest.raises(ConfigError, match="no stream signature"):
        exported.stream(x)


def test_stacked_unidirectional_model_still_streams_chunk_by_chunk():
    model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4, num_layers=3, dropout=0.2,
                               pooling="last")
    x = RNG.normal(size=(2, 8, 3)).astype("float32")
    state = np.zeros((2, 3, 4), "float32")
    whole, _ = model.stream(x, state)
    first, state = model.stream(x[:, :5], state)
    second, state = model.stream(x[:, 5:], state)
    assert state.shape == (2, 3, 4)
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, atol=1e-5)


def test_normalize_preactivation_reaches_every_layer_and_round_trips(tmp_path):
    """model.normalize_preactivation: each Recurrent layer-normalises a(n) (NumPy reference
    of one layer's recursion), the option survives a .keras round trip and still streams."""
    from seqapps.runs.settings import resolve_settings

    assert resolve_settings("audio")["model"]["normalize_preactivation"] is False
    model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4, num_layers=2, dropout=0.0,
                               normalize_preactivation=True, bidirectional=True)
    assert all(layer.normalize_preactivation for layer in model.recurrent_layers + model.backward_layers)
    layer = model.recurrent_layers[0]
    x = RNG.normal(size=(2, 6, 3)).astype("float32")
    w_x, w_s, b = (v.numpy() for v in (layer.kernel, layer.recurrent_kernel, layer.bias))
    gamma, beta = layer.preactivation_gamma.numpy(), layer.preactivation_beta.numpy()
    s, expected = np.zeros((2, 4)), []
    for n in range(6):
        a = x[:, n] @ w_x + s @ w_s + b
        z = gamma * (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + 1e-3) + beta
        s = np.tanh(z)
        expected.append(s)
    np.testing.assert_allclose(layer(x).numpy(), np.stack(expected, 1), atol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.normalize_preactivation is True
    np.testing.assert_allclose(loaded.predict({"features": x}, verbose=0), model.predict({"features": x}, verbose=0),
                               atol=1e-6)
    with pytest.raises(ConfigError, match="`normalize_preactivation`"):
        SequenceClassifier(num_classes=2, input_shape=(None, 3), normalize_preactivation="yes")


def test_bad_model_settings_name_the_argument():
    with pytest.raises(ConfigError, match="`merge_mode`"):
        SequenceClassifier(num_classes=2, input_shape=(None, 3), bidirectional=True, merge_mode="mul")


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_keras_categorical_crossentropy(smoothing):
    probabilities = keras.ops.softmax(RNG.normal(size=(6, 4)).astype("float32"))
    labels = np.array([0, 1, 2, 3, 1, 0])
    reference = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)(np.eye(4)[labels], probabilities)
    ours = SparseSmoothedCrossentropy(label_smoothing=smoothing)(labels, probabilities)
    np.testing.assert_allclose(float(ours), float(reference), rtol=1e-5)
    clone = SparseSmoothedCrossentropy.from_config(SparseSmoothedCrossentropy(label_smoothing=smoothing).get_config())
    assert clone.label_smoothing == smoothing


def test_cosine_schedule_with_warm_up_sets_the_optimizer_rate_each_epoch(tmp_path):
    callback = learning_rate_callback("cosine", learning_rate=0.01, epochs=6, warmup_epochs=2)
    expected = [0.005, 0.01] + [0.005 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]

    class Record(keras.callbacks.Callback):
        rates = []

        def on_epoch_begin(self, epoch, logs=None):
            self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    data = ({"features": RNG.normal(size=(4, 5, 3)).astype("float32")}, np.array([0, 1, 0, 1]))
    record = Record()
    fit(model, data, data, run_dir=tmp_path, epochs=6, patience=100, extra_callbacks=[callback, record], verbose=0)
    np.testing.assert_allclose(record.rates, expected, rtol=1e-6)


def test_plateau_schedule_and_bad_schedules():
    callback = learning_rate_callback("plateau", learning_rate=0.01, epochs=10, patience=6)
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau) and callback.patience == 3
    assert learning_rate_callback(None, learning_rate=0.01, epochs=10) is None
    with pytest.raises(ConfigError, match="`training.lr_schedule`"):
        learning_rate_callback("step", learning_rate=0.01, epochs=10)
    with pytest.raises(ConfigError, match="`training.warmup_epochs`"):
        learning_rate_callback("cosine", learning_rate=0.01, epochs=3, warmup_epochs=3)
