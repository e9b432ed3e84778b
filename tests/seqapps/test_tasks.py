"""Heads, tasks, training wiring and metrics against hand-computed references."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqapps.errors import ConfigError
from seqapps.evaluation import (
    classification_metrics,
    plot_confusion_matrix,
    plot_history,
    regression_metrics,
)
from seqapps.heads import ClassificationHead, RegressionHead, pool_states
from seqapps.layers import Recurrent
from seqapps.layers.normalization import FeatureNormalization
from seqapps.tasks import SequenceClassifier, SequenceRegressor
from seqapps.training import TrainingDiverged, balanced_class_weight, fit

RNG = np.random.default_rng(3)


def test_pooling_matches_numpy_over_valid_steps():
    states = RNG.standard_normal((2, 4, 3)).astype("float32")
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    mean = pool_states(tf.constant(states), tf.constant(mask), "mean").numpy()
    np.testing.assert_allclose(mean[0], states[0, :2].mean(0), rtol=1e-6)
    np.testing.assert_allclose(mean[1], states[1].mean(0), rtol=1e-6)
    largest = pool_states(tf.constant(states), tf.constant(mask), "max").numpy()
    np.testing.assert_allclose(largest[0], states[0, :2].max(0))
    np.testing.assert_allclose(pool_states(tf.constant(states), None, "last"), states[:, -1])


def test_heads_shapes_and_probabilities():
    states = RNG.standard_normal((2, 5, 4)).astype("float32")
    probabilities = ClassificationHead(3)(states).numpy()
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-6)
    multi = ClassificationHead(3, multi_label=True, pooling="none")(states).numpy()
    assert multi.shape == (2, 5, 3) and (multi > 0).all() and (multi < 1).all()
    assert RegressionHead(2, pooling="last", hidden_units=8)(states).shape == (2, 2)
    with pytest.raises(ConfigError, match="`pooling`.*pooling='median'"):
        ClassificationHead(3, pooling="median")
    with pytest.raises(ConfigError, match="num_classes=1"):
        ClassificationHead(1)


def test_feature_normalization_uses_valid_frames_only():
    features = np.array([[[1.0], [3.0], [100.0]]], "float32")
    norm = FeatureNormalization()
    norm.adapt([(features, np.array([[True, True, False]]))])
    assert norm.mean.numpy()[0] == pytest.approx(2.0)
    assert norm.variance.numpy()[0] == pytest.approx(1.0)
    np.testing.assert_allclose(norm(features).numpy()[0, :2, 0], [-1.0, 1.0], atol=1e-5)


def _toy_classification(n=64, steps=12, features=3):
    """Class 1 when the first step is positive: needs memory across the whole sequence."""
    x = RNG.standard_normal((n, steps, features)).astype("float32") * 0.3
    labels = RNG.integers(0, 2, n)
    x[:, 0, 0] = np.where(labels == 1, 1.5, -1.5)
    return x, labels


def test_classifier_learns_a_memory_task_and_round_trips(tmp_path):
    x, labels = _toy_classification()
    model = SequenceClassifier(num_classes=2, class_names=["neg", "pos"], input_shape=(None, 3),
                               units=16, num_layers=2, pooling="last", dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(0.01, clipnorm=1.0))
    model.fit({"features": x}, labels, epochs=30, batch_size=16, verbose=0)
    accuracy = (model.predict({"features": x}, verbose=0).argmax(-1) == labels).mean()
    assert accuracy >= 0.9
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(restored.predict({"features": x}, verbose=0),
                               model.predict({"features": x}, verbose=0), atol=1e-6)
    assert restored.class_names == ["neg", "pos"]
    assert restored.optimizer is not None  # compile config restored


@pytest.mark.parametrize("num_layers", [1, 3])
def test_stream_chunks_equal_whole_sequence_per_step_outputs(num_layers):
    model = SequenceRegressor(num_targets=2, input_shape=(None, 4), units=6, num_layers=num_layers,
                              pooling="last", hidden_units=5)
    x = RNG.standard_normal((3, 10, 4)).astype("float32")
    whole, whole_states = model.stream(x, tf.zeros((3, num_layers, 6)))
    state = tf.zeros((3, num_layers, 6))
    pieces = []
    for start in (0, 4, 7):
        stop = {0: 4, 4: 7, 7: 10}[start]
        out, state = model.stream(x[:, start:stop], state)
        pieces.append(out.numpy())
    np.testing.assert_allclose(np.concatenate(pieces, 1), whole, atol=1e-5)
    np.testing.assert_allclose(state, whole_states, atol=1e-5)
    # The last per-step output is what the model predicts for the whole sequence.
    np.testing.assert_allclose(whole[:, -1], model.predict({"features": x}, verbose=0), atol=1e-5)
    # reset zeroes the carried state of the flagged rows only.
    fresh, _ = model.stream(x[:, :4], tf.zeros((3, num_layers, 6)))
    out, _ = model.stream(x[:, :4], state, reset=tf.constant([True, False, True]))
    np.testing.assert_allclose(out.numpy()[[0, 2]], fresh.numpy()[[0, 2]], atol=1e-6)
    assert not np.allclose(out.numpy()[1], fresh.numpy()[1])


def test_fit_writes_run_files_and_resumes_epoch_count(tmp_path):
    x, labels = _toy_classification(n=32)
    data = ({"features": x}, labels)
    model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=8)
    model.compile()
    history = fit(model, data, data, run_dir=tmp_path, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    assert (tmp_path / "best.keras").is_file()
    rows = (tmp_path / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 4  # header + 3 epochs
    assert not (tmp_path / "backup").exists() or not any((tmp_path / "backup").iterdir())


def test_nan_loss_stops_with_a_clear_error_and_keeps_best_model(tmp_path):
    x, labels = _toy_classification(n=32)
    model = SequenceRegressor(input_shape=(None, 3), units=4)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    targets = labels.astype("float32")[:, None]
    fit(model, ({"features": x}, targets), ({"features": x}, targets), run_dir=tmp_path, epochs=1, verbose=0)
    good = (tmp_path / "best.keras").read_bytes()
    bad_targets = targets.copy()
    bad_targets[5] = np.nan
    with pytest.raises(TrainingDiverged, match=r"nan at epoch 1, batch 1.*best.keras"):
        fit(model, ({"features": x}, bad_targets), ({"features": x}, targets),
            run_dir=tmp_path, epochs=2, verbose=0)
    assert (tmp_path / "best.keras").read_bytes() == good


def test_balanced_class_weight_by_hand():
    weights = balanced_class_weight(np.array([0, 0, 0, 1, 2, 2]), 4)
    # n / (classes_present * count): 6 / (3 * 3), 6 / (3 * 1), 6 / (3 * 2); absent -> 1.
    assert weights == pytest.approx({0: 6 / 9, 1: 2.0, 2: 1.0, 3: 1.0})


def test_metrics_by_hand_and_plots(tmp_path):
    labels = np.array([0, 0, 1, 2])
    probabilities = np.eye(3)[[0, 1, 1, 2]]
    m = classification_metrics(labels, probabilities, ["a", "b", "c"])
    assert m["accuracy"] == 0.75
    # F1: a = 2/3 (p=1, r=0.5), b = 2/3 (p=0.5, r=1), c = 1.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    r = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.0]))
    assert r["mae"] == pytest.approx(0.5)
    assert r["rmse"] == pytest.approx(np.sqrt((0.25 + 1.0) / 3))
    assert r["r2"] == pytest.approx(1 - 1.25 / 2.0)
    plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}, tmp_path / "curves.png")
    plot_confusion_matrix(m["confusion_matrix"], m["class_names"], tmp_path / "cm.png")
    for name in ("curves.png", "cm.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(m)


def test_augmentation_only_in_training_and_round_trips(tmp_path):
    from seqapps.layers import SpecAugment

    model = SequenceClassifier(num_classes=2, input_shape=(None, 6), units=4, dropout=0.0,
                               augmentation=SpecAugment(freq_masks=2, freq_mask_width=3, time_masks=1,
                                                        time_mask_width=3, seed=1))
    x = {"features": RNG.standard_normal((3, 10, 6)).astype("float32")}
    np.testing.assert_allclose(model(x, training=False), model(x), atol=0)
    assert not np.allclose(model(x, training=True), model(x, training=False))
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(restored.augmentation, SpecAugment)
    np.testing.assert_allclose(restored(x), model(x), atol=1e-6)


def test_recurrent_layer_factory_builds_the_stack(tmp_path):
    """A keras layer in place of Recurrent through the public argument: same weights,
    same predictions as a model made by hand around keras.layers.SimpleRNN."""
    model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=5, num_layers=2,
                               dropout=0.0, recurrent_layer=keras.layers.SimpleRNN)
    assert [type(layer) for layer in model.recurrent_layers] == [keras.layers.SimpleRNN] * 2
    assert [layer.name for layer in model.recurrent_layers] == ["recurrent_0", "recurrent_1"]
    ours = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=5, num_layers=2,
                              dropout=0.0)
    ours.set_weights(model.get_weights())  # Recurrent has SimpleRNN's weights
    x = {"features": RNG.standard_normal((4, 7, 3)).astype("float32")}
    np.testing.assert_allclose(model.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-5)

    # The default is not written into the config (older .keras files look the same);
    # a registered class round-trips by name.
    assert "recurrent_layer" not in ours.get_config()
    graph = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=5, dropout=0.0,
                               recurrent_layer=Recurrent)
    graph.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert restored.recurrent_layer is Recurrent
    np.testing.assert_allclose(restored.predict(x, verbose=0), graph.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ConfigError, match="`recurrent_layer`"):
        SequenceClassifier(num_classes=2, input_shape=(None, 3), units=5, recurrent_layer=5)
    with pytest.raises(ConfigError, match="`recurrent_layer`.*registered"):
        SequenceClassifier(num_classes=2, input_shape=(None, 3), units=5,
                           recurrent_layer=lambda units, **kw: Recurrent(units, **kw)).get_config()


def test_recurrent_layer_factory_builds_both_directions():
    """bidirectional=True takes its backward layers from the same factory
    (go_backwards=True): keras.layers.SimpleRNN both ways answers as the default
    Recurrent both ways with the same weights."""
    calls = []

    def simple_rnn(units, **kwargs):
        calls.append((kwargs["name"], kwargs.get("go_backwards", False)))
        return keras.layers.SimpleRNN(units, **kwargs)

    model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=5, num_layers=2, dropout=0.0,
                               recurrent_layer=simple_rnn, bidirectional=True)
    assert calls == [("recurrent_0", False), ("recurrent_1", False),
                     ("recurrent_backward_0", True), ("recurrent_backward_1", True)]
    assert {type(layer) for layer in model.recurrent_layers + model.backward_layers} == {keras.layers.SimpleRNN}
    ours = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=5, num_layers=2, dropout=0.0,
                              bidirectional=True)
    assert {type(layer) for layer in ours.backward_layers} == {Recurrent}
    ours.set_weights(model.get_weights())
    x = {"features": RNG.standard_normal((4, 7, 3)).astype("float32")}
    np.testing.assert_allclose(model.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-5)
