"""FrameFlow (Lucas–Kanade flow per cell) against a NumPy reference and known motions;
its `flow` feature in `seqapps train video`, streaming and export."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from seqapps.errors import ConfigError
from seqapps.layers import FrameDifference, FrameFeatures, FrameFlow
from seqapps.layers.streaming import raw_stream
from seqapps.layers.streaming_video import VideoRawStream
from seqapps.tasks import SequenceClassifier


def _reference(frames: np.ndarray, *, size, grid, regularization) -> np.ndarray:
    """Per-cell least squares written out in NumPy, float64: cv2 INTER_AREA, np.gradient,
    np.linalg.solve of the regularised 2x2 normal equations."""
    gray = (frames.astype(np.float64) / 255.0) @ np.array([0.2989, 0.587, 0.114])
    batch, time = gray.shape[:2]
    small = np.stack([[cv2.resize(g, size[::-1], interpolation=cv2.INTER_AREA) for g in clip] for clip in gray])
    out = np.zeros((batch, time, 2 * grid[0] * grid[1]))
    ch, cw = size[0] // grid[0], size[1] // grid[1]
    for b in range(batch):
        for t in range(1, time):  # the first frame has no predecessor: zero flow
            mean = 0.5 * (small[b, t] + small[b, t - 1])
            iy, ix = np.gradient(mean)
            it = small[b, t] - small[b, t - 1]
            for k in range(grid[0] * grid[1]):
                r, c = divmod(k, grid[1])
                cell = (slice(r * ch, (r + 1) * ch), slice(c * cw, (c + 1) * cw))
                gx, gy, gt = ix[cell].ravel(), iy[cell].ravel(), it[cell].ravel()
                a = np.array([[gx @ gx, gx @ gy], [gx @ gy, gy @ gy]]) / gx.size
                rhs = -np.array([gx @ gt, gy @ gt]) / gx.size
                out[b, t, k], out[b, t, grid[0] * grid[1] + k] = np.linalg.solve(a + regularization * np.eye(2), rhs)
    return out


def _texture(rng, shape=(96, 96)) -> np.ndarray:
    """A smooth random texture in [30, 225] (gradients everywhere, no aliasing)."""
    coarse = rng.uniform(0, 1, (shape[0] // 8, shape[1] // 8)).astype(np.float32)
    fine = cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(fine, (0, 0), 2.0)
    fine = (fine - fine.min()) / (fine.max() - fine.min())
    return 30 + 195 * fine


def _shifted(image: np.ndarray, steps, *, dx=0, dy=0, crop=32) -> np.ndarray:
    """uint8 RGB frames [1, len(steps), crop, crop, 3]: content moved by (dx, dy) px per step."""
    h, w = image.shape
    top, left = (h - crop) // 2, (w - crop) // 2
    frames = [image[top - dy * s: top - dy * s + crop, left - dx * s: left - dx * s + crop] for s in steps]
    return np.repeat(np.round(np.stack(frames)).astype(np.uint8)[None, ..., None], 3, axis=-1)


def test_matches_the_numpy_least_squares_reference():
    rng = np.random.default_rng(3)
    frames = np.stack([_shifted(_texture(rng), range(4), dx=1, dy=-1, crop=32)[0],
                       rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)])  # smooth and noise
    frames[0] = np.clip(frames[0] + rng.normal(0, 3, frames[0].shape), 0, 255).astype(np.uint8)
    for size, grid, regularization in (((16, 16), (4, 4), 1e-3), ((32, 16), (2, 4), 1e-2), ((8, 8), (1, 1), 1e-4)):
        got = FrameFlow(size=size, grid=grid, regularization=regularization)(frames).numpy()
        expected = _reference(frames, size=size, grid=grid, regularization=regularization)
        assert got.shape == expected.shape == (2, 4, 2 * grid[0] * grid[1])
        np.testing.assert_allclose(got, expected, atol=2e-3 * max(1.0, np.abs(expected).max()))
        assert np.all(got[:, 0] == 0)


@pytest.mark.parametrize(("dx", "dy"), [(1, 0), (-1, 0), (0, 1), (0, -1)])
def test_a_texture_shifted_by_one_pixel_has_unit_flow(dx, dy):
    frames = _shifted(_texture(np.random.default_rng(5)), range(3), dx=dx, dy=dy)
    # With a negligible regularisation every (textured) cell sees the whole shift.
    flow = FrameFlow(size=(32, 32), grid=(4, 4), regularization=1e-6)(frames).numpy()[0]
    assert np.all(flow[0] == 0)  # no predecessor
    along, across = (flow[1:, :16], flow[1:, 16:]) if dx else (flow[1:, 16:], flow[1:, :16])
    np.testing.assert_allclose(along, dx or dy, atol=0.15)
    np.testing.assert_allclose(across, 0.0, atol=0.1)
    # The default regularisation shrinks the flow of this smooth, low-gradient texture
    # towards zero, never past it.
    shrunk = FrameFlow(size=(32, 32), grid=(4, 4))(frames).numpy()[0, 1:]
    shrunk_along = shrunk[:, :16] if dx else shrunk[:, 16:]
    assert np.all(shrunk_along * (dx or dy) > 0) and np.all(np.abs(shrunk_along) < np.abs(along) + 1e-6)


def _blob_clip(*, background: float, blob: float, dx: int, noise: float = 0.0, seed: int = 0):
    """A Gaussian blob (sigma 5 px) on a flat background, moving dx px per frame at 64x64."""
    yy, xx = np.mgrid[0:64, 0:64]
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(4):
        weight = np.exp(-((xx - 28 - dx * t) ** 2 + (yy - 30) ** 2) / (2 * 5.0**2))
        frame = background + (blob - background) * weight + rng.normal(0, noise, (64, 64))
        frames.append(np.clip(frame, 0, 255))
    return np.repeat(np.round(np.stack(frames)).astype(np.uint8)[None, ..., None], 3, axis=-1)


def test_dark_and_bright_objects_give_the_same_flow():
    layer = FrameFlow(size=(32, 32), grid=(4, 4))
    bright = _blob_clip(background=60, blob=220, dx=2)
    # The photographic negative: every gradient and I_t flips, the flow does not.
    np.testing.assert_allclose(layer(255 - bright).numpy(), layer(bright).numpy(), atol=1e-5)
    # ... while the signed difference does flip: what made direction_any_contrast fail.
    difference = FrameDifference(size=(8, 8))
    np.testing.assert_allclose(difference(255 - bright).numpy(), -difference(bright).numpy(), atol=1e-6)
    for dx in (2, -2):  # 2 px at 64 = 1 px per frame at 32
        for background, blob in ((60, 220), (200, 40), (128, 30)):
            clip = _blob_clip(background=background, blob=blob, dx=dx, noise=3.0, seed=dx + blob)
            flow = layer(clip).numpy()[0, 1:]
            u, v = flow[:, :16], flow[:, 16:]
            # The four cells the blob's centre crosses (rows 1-2, columns 1-2 of the 4x4 grid).
            covered = [5, 6, 9, 10]
            assert np.all(np.sign(u[:, covered]) == np.sign(dx)), (background, blob, u[:, covered])
            # Each cell sees part of a round edge (the aperture problem: some v), the four
            # together see the blob's motion.
            assert abs(v[:, covered].mean()) < 0.05 * abs(u[:, covered].mean())
            # Far from the blob the background is flat: the regularised flow stays near zero.
            assert np.abs(flow[:, [0, 3, 12, 15, 16, 19, 28, 31]]).max() < 0.1
            # Without the shrinkage of the regularisation: the speed, 1 px per frame.
            exact = FrameFlow(size=(32, 32), grid=(4, 4), regularization=1e-6)(clip).numpy()[0, 1:]
            np.testing.assert_allclose(exact[:, covered], dx / 2, atol=0.2)
            assert abs(exact[:, [16 + c for c in covered]].mean()) < 0.05


def test_config_round_trip_saved_model_mask_and_dynamic_shapes(tmp_path):
    layer = FrameFlow(size=(16, 24), grid=(2, 3), regularization=2e-3)
    clone = FrameFlow.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert layer.feature_size(3) == 12
    assert tuple(layer.compute_output_shape((None, None, 32, 48, 3))) == (None, None, 12)
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2, 3, 32, 48, 3), dtype=np.uint8)
    mask = np.array([[True, True, False], [True, False, False]])
    assert layer.compute_mask(frames, mask) is mask
    np.testing.assert_allclose(clone(frames).numpy(), layer(frames).numpy(), atol=1e-6)
    inputs = keras.Input((None, 32, 48, 3), dtype="uint8")
    model = keras.Model(inputs, FrameFeatures(layers=[layer, FrameDifference(size=(4, 4))])(inputs))
    model.save(tmp_path / "flow.keras")
    restored = keras.models.load_model(tmp_path / "flow.keras")
    np.testing.assert_allclose(restored(frames).numpy(), model(frames).numpy(), atol=1e-6)
    assert restored.output_shape == (None, None, 12 + 16)

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, None, 3), tf.uint8)])
    def serve(x):
        return layer(x)

    for shape in [(1, 4, 32, 32, 3), (3, 2, 48, 64, 3), (1, 1, 20, 30, 3)]:
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_allclose(serve(x).numpy(), layer(x).numpy(), atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"size": (16, 16), "grid": (3, 3)}, "grid"), ({"size": (1, 8), "grid": (1, 1)}, "size"),
     ({"regularization": 0.0}, "regularization"), ({"regularization": True}, "regularization")],
)
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ConfigError, match=f"`{name}`"):
        FrameFlow(**kwargs)


# --------------------------------------------------------------------------- CLI, streaming, export


def _frontend(features):
    from seqapps.runs.data import make_frontend
    from seqapps.runs.settings import resolve_settings

    data = resolve_settings("video", overrides={"data": {"features": features}})["data"]
    return make_frontend("video", data)


def test_flow_feature_in_the_cli_settings():
    frontend, shape = _frontend(["flow"])
    assert shape == (None, 64, 64, 3)
    # Alone it is the frontend itself (raw_stream streams it); its defaults stay.
    assert isinstance(frontend, FrameFlow) and frontend.get_config()["grid"] == [4, 4]
    from seqapps.layers.streaming import raw_stream
    from seqapps.layers.streaming_video import VideoRawStream

    assert isinstance(raw_stream(_video_model(frontend), window_frames=None), VideoRawStream)
    both, _ = _frontend(["flow", "difference"])
    assert [type(layer) for layer in both.layers] == [FrameFlow, FrameDifference]
    assert both.feature_size(3) == 32 + 64
    frames = np.random.default_rng(2).integers(0, 256, (1, 5, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(both(frames).numpy()[..., :32], FrameFlow()(frames).numpy(), atol=1e-6)


def _video_model(frontend):
    model = SequenceClassifier(num_classes=2, input_shape=(None, 24, 32, 3), units=6, frontend=frontend)
    # Flow features are small: scale them up so the untrained outputs show differences.
    model.normalization.variance.assign(np.full(model.feature_size, 1e-2, np.float32))
    return model


def _chunked(stream, frames, sizes):
    state, outputs, position = stream.initial_state(frames.shape[0]), [], 0
    for size in sizes:
        result = stream.step(frames[:, position:position + size], state)
        position += size
        outputs.append(result["probabilities"].numpy())
        state = {name: result[name].numpy() for name in stream.state_spec()}
    return np.concatenate(outputs, 1)


def test_streaming_chunks_equal_the_whole_clip():
    rng = np.random.default_rng(8)
    clip = _shifted(_texture(rng, (80, 96)), range(11), dx=1, dy=0)[0]
    frames = np.stack([clip[:, :24, :32], rng.integers(0, 256, (11, 24, 32, 3), dtype=np.uint8)])
    for frontend, stream_of in (
        (FrameFlow(size=(12, 16), grid=(2, 2)), lambda m: VideoRawStream(m, fps=12.0)),
        (FrameFeatures(layers=[FrameFlow(size=(12, 16), grid=(3, 4)), FrameDifference(size=(6, 8))]),
         lambda m: raw_stream(m, window_frames=None)),
    ):
        model = _video_model(frontend)
        stream = stream_of(model)
        zeros = np.zeros((2, model.num_layers, model.units), np.float32)
        whole = model.stream(model.frontend(frames), zeros)[0].numpy()  # one call, whole clip
        for sizes in ([1] * 11, [3, 1, 5, 2], [11]):
            np.testing.assert_allclose(_chunked(stream, frames, sizes), whole, atol=1e-5)


def test_export_keeps_the_flow_frontend_and_stream_raw(tmp_path):
    from seqapps.export import export_model, load_exported

    frontend, _ = _frontend(["flow", "difference"])
    model = SequenceClassifier(num_classes=2, class_names=["l", "r"], input_shape=(None, 64, 64, 3),
                               frontend=frontend, units=4, dropout=0.0)
    model.normalization.variance.assign(np.full(model.feature_size, 1e-2, np.float32))
    preprocessing = {"kind": "video", "fps": 12, "size": [64, 64], "window_frames": 8, "hop_frames": 8}
    path = export_model(model, base_dir=tmp_path, name="flow", preprocessing=preprocessing, warmup_examples=1)
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 256, (2, 8, 64, 64, 3), dtype=np.uint8)
    expected = model({"inputs": raw, "mask": np.ones((2, 8), bool)}, training=False).numpy()
    np.testing.assert_allclose(load_exported(path)(raw)["probabilities"], expected, atol=1e-5)
    loaded = tf.saved_model.load(str(path))
    assert "stream_raw" in loaded.signatures
    stream = raw_stream(model, window_frames=None)
    state = {name: tf.constant(value) for name, value in stream.initial_state(2).items()}
    served = loaded.signatures["stream_raw"](frames=tf.constant(raw), reset=tf.constant([True, True]), **state)
    local = stream.step(raw, stream.initial_state(2))
    np.testing.assert_allclose(served["probabilities"].numpy(), local["probabilities"].numpy(), atol=1e-5)
