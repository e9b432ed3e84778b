"""Frame-feature layers against OpenCV / NumPy references, configs, masks, dynamic shapes."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from seqapps.errors import ConfigError
from seqapps.layers.video_frontends import (
    ColorHistogram,
    FrameEmbedder,
    FrameFeatures,
    FrameMotion,
    FramePixels,
    image_backbone,
    small_cnn,
)


@pytest.fixture
def frames() -> np.ndarray:
    """uint8 [2, 3, 32, 48, 3]: smooth random images (area resizing has something to do)."""
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 256, (2, 3, 8, 12, 3), dtype=np.uint8)
    out = np.empty((2, 3, 32, 48, 3), np.uint8)
    for b in range(2):
        for t in range(3):
            out[b, t] = cv2.resize(coarse[b, t], (48, 32), interpolation=cv2.INTER_LINEAR)
    out[0, 2] = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)  # some high-frequency content
    return out


def _gray(frame_rgb: np.ndarray) -> np.ndarray:
    """float [h, w] luma in [0, 1] with the weights tf.image.rgb_to_grayscale uses."""
    return (frame_rgb.astype(np.float64) / 255.0) @ np.array([0.2989, 0.5870, 0.1140])


def _area(image: np.ndarray, size) -> np.ndarray:
    """Area averaging for integer factors, by reshaping: an independent reference."""
    h, w = image.shape[:2]
    fh, fw = h // size[0], w // size[1]
    return image.reshape(size[0], fh, size[1], fw, *image.shape[2:]).mean(axis=(1, 3))


ALL_LAYERS = [
    lambda: FramePixels(size=(8, 12)),
    lambda: FramePixels(size=(4, 4), normalization="standardize", grayscale=True),
    lambda: ColorHistogram(bins=8),
    lambda: FrameMotion(size=(16, 16), grid=(2, 4), threshold=0.1),
    lambda: FrameEmbedder(model=small_cnn(input_shape=(16, 16, 3), embedding_dim=5), input_size=(16, 16), scale="unit"),
    lambda: FrameFeatures(layers=[FramePixels(size=(2, 2)), ColorHistogram(bins=4), FrameMotion()]),
]


def test_frame_pixels_match_opencv_area_resize(frames):
    layer = FramePixels(size=(8, 12))
    out = np.asarray(layer(frames))
    assert out.shape == (2, 3, 8 * 12 * 3)
    for b in range(2):
        for t in range(3):
            expected = cv2.resize(frames[b, t], (12, 8), interpolation=cv2.INTER_AREA) / 255.0
            # cv2 rounds its uint8 output; compare with its rounding step of 1/255.
            np.testing.assert_allclose(out[b, t], expected.reshape(-1), atol=0.5 / 255 + 1e-6)
            np.testing.assert_allclose(
                out[b, t], _area(frames[b, t] / 255.0, (8, 12)).reshape(-1), atol=1e-5
            )


def test_frame_pixels_standardize_and_grayscale(frames):
    out = np.asarray(FramePixels(size=(4, 4), normalization="standardize", grayscale=True)(frames))
    for b in range(2):
        for t in range(3):
            small = _area(_gray(frames[b, t]), (4, 4)).reshape(-1)
            expected = (small - small.mean()) / np.sqrt(small.var() + 1e-6)
            np.testing.assert_allclose(out[b, t], expected, atol=1e-3)
    np.testing.assert_allclose(out.mean(axis=-1), 0, atol=1e-5)


def test_color_histogram_matches_numpy_and_opencv(frames):
    bins = 8
    counts = np.asarray(ColorHistogram(bins=bins, normalize=False)(frames))
    normalized = np.asarray(ColorHistogram(bins=bins)(frames))
    for b in range(2):
        for t in range(3):
            frame = frames[b, t]
            expected = np.concatenate(
                [np.histogram(frame[..., c], bins=bins, range=(0, 256))[0] for c in range(3)]
            )
            np.testing.assert_array_equal(counts[b, t], expected)
            opencv = np.concatenate(
                [cv2.calcHist([frame], [c], None, [bins], [0, 256]).reshape(-1) for c in range(3)]
            )
            np.testing.assert_array_equal(counts[b, t], opencv)
            np.testing.assert_allclose(normalized[b, t], expected / (32 * 48), rtol=1e-6)


def test_frame_motion_matches_numpy(frames):
    layer = FrameMotion(size=(16, 16), grid=(2, 4), threshold=0.1)
    out = np.asarray(layer(frames))
    assert out.shape == (2, 3, 24)
    for b in range(2):
        small = [_area(_gray(frames[b, t]), (16, 16)) for t in range(3)]
        for t in range(3):
            diff = np.abs(small[t] - small[t - 1]) if t else np.zeros((16, 16))
            cells = diff.reshape(2, 8, 4, 4).transpose(0, 2, 1, 3).reshape(8, 32)
            expected = np.concatenate(
                [cells.mean(axis=1), cells.std(axis=1), (cells > 0.1).mean(axis=1)]
            )
            np.testing.assert_allclose(out[b, t, :16], expected[:16], atol=1e-4)
            # The fraction may flip for a pixel sitting at the threshold within float error.
            np.testing.assert_allclose(out[b, t, 16:], expected[16:], atol=1.5 / 32)
    assert np.all(out[:, 0] == 0)  # the first frame has no predecessor


def test_frame_embedder_applies_the_model_to_every_frame(frames):
    cnn = small_cnn(input_shape=(16, 16, 3), embedding_dim=6)
    layer = FrameEmbedder(model=cnn, input_size=(16, 16), scale="symmetric")
    out = np.asarray(layer(frames))
    for b in range(2):
        for t in range(3):
            image = tf.image.resize(frames[b, t][None].astype(np.float32), (16, 16)) / 127.5 - 1
            np.testing.assert_allclose(out[b, t], np.asarray(cnn(image))[0], atol=1e-5)


def test_frame_embedder_with_a_keras_application_and_user_weights(tmp_path):
    source = image_backbone("MobileNetV3Small", input_shape=(32, 32, 3))
    weights = tmp_path / "backbone.weights.h5"
    source.save_weights(weights)
    loaded = image_backbone("MobileNetV3Small", input_shape=(32, 32, 3), weights=weights)
    frames = np.random.default_rng(0).integers(0, 256, (1, 2, 40, 40, 3), dtype=np.uint8)
    a = np.asarray(FrameEmbedder(model=source, input_size=(32, 32))(frames))
    b = np.asarray(FrameEmbedder(model=loaded, input_size=(32, 32))(frames))
    assert a.shape == (1, 2, source.output_shape[-1])
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_config_round_trip_output_shape_and_mask(make, frames):
    layer = make()
    out = layer(frames)
    clone = type(layer).from_config(layer.get_config())
    if layer.weights:
        clone.build(frames.shape)
        clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(frames)), np.asarray(out), atol=1e-6)
    assert tuple(layer.compute_output_shape((None, None, 32, 48, 3))) == (None, None, out.shape[-1])
    mask = np.array([[True, True, False], [True, False, False]])
    assert layer.compute_mask(frames, mask) is mask


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_dynamic_batch_time_and_frame_size_in_a_served_function(make):
    layer = make()

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, None, 3), tf.uint8)])
    def serve(x):
        return layer(x)

    rng = np.random.default_rng(1)
    for shape in [(1, 4, 32, 32, 3), (3, 2, 48, 64, 3)]:
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_allclose(np.asarray(serve(x)), np.asarray(layer(x)), atol=1e-5)


def test_saved_model_with_frame_features_and_mask(tmp_path, frames):
    inputs = keras.Input((None, 32, 48, 3), dtype="uint8")
    mask_in = keras.Input((None,), dtype="bool")
    features = FrameFeatures(
        layers=[FramePixels(size=(4, 4)), FrameEmbedder(model=small_cnn(input_shape=(16, 16, 3), embedding_dim=4),
                                                        input_size=(16, 16), scale="unit")]
    )(inputs)
    outputs = keras.layers.GRU(3)(features, mask=mask_in)
    model = keras.Model([inputs, mask_in], outputs)
    mask = np.array([[True, True, False], [True, True, True]])
    expected = np.asarray(model([frames, mask]))
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(restored([frames, mask])), expected, atol=1e-5)
    # The mask matters: the masked third frame does not change the first clip's output.
    changed = frames.copy()
    changed[0, 2] = 255 - changed[0, 2]
    np.testing.assert_allclose(np.asarray(model([changed, mask]))[0], expected[0], atol=1e-5)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: FramePixels(size=(0, 4)), "size"),
        (lambda: FramePixels(normalization="minmax"), "normalization"),
        (lambda: ColorHistogram(bins=0), "bins"),
        (lambda: FrameMotion(size=(16, 16), grid=(3, 3)), "grid"),
        (lambda: FrameEmbedder(model="mobilenet"), "model"),
        (lambda: FrameFeatures(layers=[]), "layers"),
        (lambda: image_backbone("NoSuchNet"), "name"),
    ],
)
def test_bad_arguments_name_themselves(make, name):
    with pytest.raises(ConfigError, match=f"`{name}`"):
        make()


def test_frame_difference_signed_against_numpy_and_cv2():
    import cv2

    from seqapps.layers.video_frontends import FrameDifference

    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, (2, 5, 16, 24, 3), dtype=np.uint8)
    out = FrameDifference(size=(4, 6))(frames).numpy()
    assert out.shape == (2, 5, 24)
    # Reference: luma (ITU-R 601, as tf.image.rgb_to_grayscale), INTER_AREA resize, diff.
    gray = (frames.astype(np.float64) / 255.0) @ np.array([0.2989, 0.587, 0.114])
    small = np.stack([[cv2.resize(g, (6, 4), interpolation=cv2.INTER_AREA) for g in clip] for clip in gray])
    small = small.reshape(2, 5, 24)
    expected = small - np.concatenate([small[:, :1], small[:, :-1]], axis=1)
    np.testing.assert_allclose(out, expected, atol=2e-3)
    assert np.all(out[:, 0] == 0)
    moving = np.zeros((1, 2, 8, 8, 3), np.uint8)
    moving[0, 0, :, 2:4] = 255
    moving[0, 1, :, 4:6] = 255  # moved right
    signed = FrameDifference(size=(1, 4))(moving).numpy()[0, 1]
    assert signed[1] < 0 < signed[2]
