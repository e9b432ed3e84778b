"""SequenceModel.predict_clip, signatures() and describe(): the model's one prediction path.

References are independent: windows cut with plain NumPy slicing, each predicted by the
Keras model, averaged with NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from seqapps import serving
from seqapps.errors import ConfigError
from seqapps.layers.audio_frontends import LogMelSpectrogram
from seqapps.layers.video_frontends import FrameFeatures, FrameMotion, FramePixels
from seqapps.layers.windows import count_windows, frame_clips
from seqapps.tasks import SequenceClassifier, SequenceRegressor

RNG = np.random.default_rng(3)


def _numpy_clip_prediction(model, clips, *, window, hop, key="inputs"):
    """Pad each clip to whole windows by hand, predict each window, average."""
    n = clips.shape[1]
    starts = []
    start = 0
    while True:  # start every hop while inside the clip, until a window reaches the end
        starts.append(start)
        if start + window >= n or start + hop >= n:
            break
        start += hop
    padded = np.zeros((clips.shape[0], starts[-1] + window, *clips.shape[2:]), clips.dtype)
    padded[:, :n] = clips
    outputs = []
    for s in starts:
        mask = np.broadcast_to(np.arange(s, s + window) < n, (clips.shape[0], window))
        outputs.append(model({key: padded[:, s:s + window], "mask": mask}, training=False).numpy())
    return np.mean(outputs, axis=0), np.stack(outputs, axis=1)


@pytest.mark.parametrize("n", [300, 800, 1700])
def test_audio_clip_is_the_mean_of_its_windows(n):
    model = SequenceClassifier(num_classes=3, input_shape=(None,), units=4, dropout=0.0,
                               frontend=LogMelSpectrogram(sample_rate=8000, n_fft=256, hop_length=80, n_mels=6))
    clips = (0.2 * RNG.standard_normal((2, n))).astype("float32")
    clip, windows = model.predict_clip(clips, window=800, hop=400, return_windows=True)
    expected_clip, expected_windows = _numpy_clip_prediction(model, clips, window=800, hop=400)
    np.testing.assert_allclose(windows.numpy(), expected_windows, atol=1e-6)
    np.testing.assert_allclose(clip.numpy(), expected_clip, atol=1e-6)
    assert windows.shape[1] == int(count_windows(n, window=800, hop=400))


def test_video_features_come_from_the_whole_clip_before_windowing():
    frontend = FrameFeatures(layers=[FramePixels(size=(2, 2)), FrameMotion(size=(8, 8), grid=(2, 2))])
    model = SequenceClassifier(num_classes=2, input_shape=(None, 8, 8, 3), frontend=frontend, units=4,
                               dropout=0.0)
    frames = RNG.integers(0, 256, (1, 11, 8, 8, 3), dtype=np.uint8)
    features = frontend(frames).numpy()
    expected, _ = _numpy_clip_prediction(model, features, window=6, hop=3, key="features")
    np.testing.assert_allclose(model.predict_clip(frames, window=6, hop=3).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(model.predict_clip({"features": features}, window=6, hop=3).numpy(), expected,
                               atol=1e-6)
    # Motion of window 2's first frame needs the frame before it: per-window frontends differ.
    per_window, _ = _numpy_clip_prediction(model, frames, window=6, hop=3)
    assert not np.allclose(per_window, expected, atol=1e-6)


def test_per_step_model_and_no_window_run_the_whole_clip():
    model = SequenceRegressor(input_shape=(None, 3), units=3, pooling="none", dropout=0.0)
    clips = RNG.standard_normal((2, 9, 3)).astype("float32")
    whole = model({"inputs": clips}, training=False).numpy()
    np.testing.assert_allclose(model.predict_clip(clips, window=4, hop=2).numpy(), whole, atol=1e-6)
    pooled = SequenceRegressor(input_shape=(None, 3), units=3, dropout=0.0)
    np.testing.assert_allclose(pooled.predict_clip(clips).numpy(), pooled({"inputs": clips}).numpy(), atol=1e-6)


def test_frame_clips_matches_numpy_slicing():
    clips = np.arange(2 * 7).reshape(2, 7)
    windows, mask, count = frame_clips(clips, window=3, hop=2)
    assert int(count) == 3
    padded = np.concatenate([clips, np.zeros((2, 0), int)], axis=1)
    expected = [padded[b, s:s + 3] for b in range(2) for s in (0, 2, 4)]
    np.testing.assert_array_equal(windows.numpy(), expected)
    np.testing.assert_array_equal(mask.numpy(), np.ones((6, 3), bool))
    empty, empty_mask, one = frame_clips(np.zeros((1, 0, 2), "float32"), window=3, hop=2)
    assert int(one) == 1 and empty.shape == (1, 3, 2) and not empty_mask.numpy().any()


def test_describe_and_signatures_of_a_classifier_and_an_added_signature():
    model = SequenceClassifier(num_classes=2, class_names=["no", "yes"], input_shape=(None, 3), units=5,
                               num_layers=2)
    description = model.describe(window=6, hop=3)
    assert description["task"] == "classify" and description["kind"] == "features"
    assert description["labels"] == ["no", "yes"] and description["state_shape"] == [2, 5]
    assert description["windowing"] == {"window": 6, "hop": 3, "unit": "frames", "pad_end": True,
                                        "aggregation": "mean"}

    def last_step(model, *, window, hop):  # a signature added by a builder
        spec = tf.TensorSpec([None, None, model.feature_size], tf.float32, name="features")
        function = tf.function(lambda x: serving.outputs(model, model({"features": x[:, -1:]})),
                               input_signature=[spec])
        return serving.Signature(function, lambda batch, rng: {"features": np.zeros((batch, 2, 3), "float32")})

    signatures = model.signatures(window=6, hop=3, builders={**serving.SIGNATURE_BUILDERS, "last": last_step})
    assert list(signatures) == ["serving_default", "features", "stream", "last"]
    x = RNG.standard_normal((1, 4, 3)).astype("float32")
    out = signatures["last"].function(x)
    assert out["labels"].numpy()[0].decode() in ("no", "yes")
    np.testing.assert_allclose(out["probabilities"].numpy(), model({"features": x[:, -1:]}).numpy(), atol=1e-6)
    raw = signatures["serving_default"].function(x)
    np.testing.assert_allclose(raw["probabilities"].numpy(),
                               _numpy_clip_prediction(model, x, window=6, hop=3)[0], atol=1e-6)


def test_window_settings_of_a_preprocessing_config():
    """The run settings serving_default windows with (seqapps.serving, not export)."""
    assert serving.window_settings({"kind": "audio", "window_samples": 16000, "hop_samples": 4000}) == (16000, 4000)
    assert serving.window_settings({"kind": "video", "window_frames": 12}) == (12, 12)  # hop defaults to window
    assert serving.window_settings({"kind": "features", "window_frames": 8, "hop_frames": 2}) == (8, 2)
    assert serving.window_settings({"kind": "audio", "window_frames": 8}) is None  # frames mean nothing for audio
    assert serving.window_settings({}) is None
    with pytest.raises(ConfigError, match=r"`preprocessing\['hop_samples'\]` must be a positive integer"):
        serving.window_settings({"kind": "audio", "window_samples": 16000, "hop_samples": 0.5})
    with pytest.raises(ConfigError, match=r"`preprocessing\['kind'\]` must be one of"):
        serving.window_settings({"kind": "text", "window_frames": 8})
    assert serving.preprocessing_kind({}, "video") == "video"
