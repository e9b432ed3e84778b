"""Video decoding, windowed datasets, the frame-feature cache and the synthetic demo data.

References are OpenCV itself (cv2.VideoCapture, cv2.resize, cv2.cvtColor), NumPy hand
computation and pipelines.windows on directly decoded frames.
"""

from __future__ import annotations

import csv
import inspect
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipelines import video
from pipelines.frame_cache import read_cached_clips, read_frame_cache, write_frame_cache
from pipelines.report import BadInputReport
from pipelines.synthetic_video import CLASSES, write_synthetic_video
from pipelines.video import (
    iter_frames,
    load_frame_targets,
    optical_flow_features,
    read_clip,
    resize_frame,
    video_dataset,
)
from seqapps.errors import BadMediaError, ConfigError


@dataclass
class Example:  # a stand-in for pipelines.sources.Example (only what video needs)
    path: str
    label: int | None = None
    targets: object = None


# --------------------------------------------------------------------------- fixtures


def _write(path: Path, frames_bgr: np.ndarray, *, fps: float, codec: str = "MJPG") -> Path:
    h, w = frames_bgr.shape[1:3]
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    assert writer.isOpened()
    for frame in frames_bgr:
        writer.write(frame)
    writer.release()
    return path


def _cv2_frames(path) -> tuple[list[np.ndarray], list[float]]:
    capture = cv2.VideoCapture(os.fspath(path))
    frames, stamps = [], []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
        stamps.append(capture.get(cv2.CAP_PROP_POS_MSEC))
    capture.release()
    return frames, stamps


@pytest.fixture(scope="module")
def numbered_clip(tmp_path_factory) -> Path:
    """30 frames at 30 fps, 48x64; frame i is uniformly gray with intensity 8 * i."""
    frames = np.stack([np.full((48, 64, 3), 8 * i, np.uint8) for i in range(30)])
    return _write(tmp_path_factory.mktemp("numbered") / "numbered.avi", frames, fps=30)


@pytest.fixture(scope="module")
def textured_clip(tmp_path_factory) -> Path:
    """12 frames of a colourful 40x80 pattern (different per channel) at 10 fps."""
    rng = np.random.default_rng(3)
    base = cv2.resize(rng.integers(0, 256, (10, 20, 3), dtype=np.uint8), (80, 40))
    frames = np.stack([np.roll(base, 2 * i, axis=1) for i in range(12)])
    return _write(tmp_path_factory.mktemp("textured") / "textured.avi", frames, fps=10)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    return write_synthetic_video(
        tmp_path_factory.mktemp("synthetic"), n_per_class=2, size=(32, 32), n_frames=12, fps=12
    )


def _frame_number(frame: np.ndarray) -> int:
    return int(round(float(frame.mean()) / 8))


# --------------------------------------------------------------------------- decoding


def test_decoding_matches_opencv(textured_clip):
    reference, _ = _cv2_frames(textured_clip)
    bgr = read_clip(textured_clip, color="bgr")
    np.testing.assert_array_equal(bgr, np.stack(reference))
    rgb = read_clip(textured_clip)
    np.testing.assert_array_equal(rgb, np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in reference]))
    gray = read_clip(textured_clip, color="gray")
    assert gray.shape == (12, 40, 80, 1)
    np.testing.assert_array_equal(gray[..., 0], np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in reference]))


def test_frames_are_streamed_by_a_generator(numbered_clip):
    stream = iter_frames(numbered_clip)
    assert inspect.isgenerator(stream)
    first = next(stream)
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8
    assert _frame_number(first) == 0
    assert _frame_number(next(stream)) == 1
    stream.close()  # releases the capture (try/finally) without decoding the rest


def test_fps_resampling_keeps_the_frame_nearest_each_time(numbered_clip):
    _, stamps = _cv2_frames(numbered_clip)
    stamps = np.asarray(stamps) - stamps[0]
    for fps in (10, 7, 45):
        targets = np.arange(0, stamps[-1] + 1e-6, 1000.0 / fps)
        expected = [int(np.argmin(np.abs(stamps - t))) for t in targets]
        got = [_frame_number(f) for f in iter_frames(numbered_clip, fps=fps)]
        assert got == expected, fps
    # 30 fps read at 10 fps: every third frame.
    assert [_frame_number(f) for f in iter_frames(numbered_clip, fps=10)] == list(range(0, 30, 3))


def test_max_frames_counts_output_frames(numbered_clip):
    clip = read_clip(numbered_clip, fps=10, max_frames=4)
    assert [_frame_number(f) for f in clip] == [0, 3, 6, 9]


def test_resize_crop_and_pad_keep_the_aspect_ratio():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (40, 80, 3), dtype=np.uint8)
    cropped = resize_frame(frame, size=(20, 20), mode="crop")
    np.testing.assert_array_equal(
        cropped, cv2.resize(frame[:, 20:60], (20, 20), interpolation=cv2.INTER_AREA)
    )
    padded = resize_frame(frame, size=(20, 20), mode="pad")
    inner = cv2.resize(frame, (20, 10), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(padded[5:15], inner)
    assert not padded[:5].any() and not padded[15:].any()
    # Wider target than source: crop cuts rows instead.
    tall = resize_frame(frame, size=(10, 40), mode="crop")
    np.testing.assert_array_equal(tall, cv2.resize(frame[10:30], (40, 10), interpolation=cv2.INTER_AREA))


def test_read_clip_resizes_each_frame(textured_clip):
    reference, _ = _cv2_frames(textured_clip)
    clip = read_clip(textured_clip, size=(16, 16), resize_mode="pad", color="bgr")
    assert clip.shape == (12, 16, 16, 3)
    np.testing.assert_array_equal(clip[3], resize_frame(reference[3], size=(16, 16), mode="pad"))


@pytest.mark.parametrize(
    "kwargs",
    [{"fps": 0}, {"size": (0, 3)}, {"resize_mode": "stretch"}, {"color": "hsv"}, {"max_frames": 0}],
)
def test_bad_options_name_the_argument(numbered_clip, kwargs):
    with pytest.raises(ConfigError, match=f"`{next(iter(kwargs))}`"):
        read_clip(numbered_clip, **kwargs)


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(os.fspath(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    writer.release()  # a container with no frame
    rng = np.random.default_rng(1)
    full = _write(tmp_path / "full.avi", rng.integers(0, 256, (40, 48, 64, 3), dtype=np.uint8), fps=10)
    data = full.read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: len(data) // 2])
    return {"missing": tmp_path / "missing.mp4", "text": text, "empty": empty, "truncated": truncated}


@pytest.mark.parametrize("name", ["missing", "text", "empty"])
def test_unusable_files_are_skipped_and_reported(bad_files, name):
    report = BadInputReport()
    assert read_clip(bad_files[name], report=report) is None
    assert list(iter_frames(bad_files[name], report=report)) == []
    assert report.count == 2 and len(report.skipped) == 2
    assert report.entries[0]["path"] == os.fspath(bad_files[name])
    with pytest.raises(BadMediaError, match=bad_files[name].name):
        read_clip(bad_files[name], report=BadInputReport(strict=True))
    with pytest.raises(BadMediaError):  # no report means strict
        read_clip(bad_files[name])


@pytest.mark.parametrize("backend", ["pyav", "opencv"])
def test_reasons_that_need_no_decoder_are_true(tmp_path, backend):
    """A dangling link, a folder named like a clip and a 0-byte file get the reasons the
    audio reader gives, with either video reader."""
    (tmp_path / "gone.mp4").symlink_to(tmp_path / "deleted.mp4")
    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "zero.mp4").write_bytes(b"")
    expected = {"gone.mp4": "dangling link (points to", "folder.mp4": "not a file (a folder)",
                "zero.mp4": "empty file (0 bytes)", "missing.mp4": "file not found"}
    for name, reason in expected.items():
        report = BadInputReport()
        assert read_clip(tmp_path / name, report=report, backend=backend) is None
        assert report.entries[0]["reason"].startswith(reason), (name, report.entries)


def test_a_file_broken_part_way_keeps_its_first_frames(bad_files):
    path = bad_files["truncated"]
    reference, _ = _cv2_frames(path)
    assert 0 < len(reference) < 40
    report = BadInputReport()
    clip = read_clip(path, color="bgr", report=report)
    np.testing.assert_array_equal(clip, np.stack(reference))
    assert report.entries == [
        {"path": os.fspath(path), "reason": f"only {len(reference)} of 40 declared frames decode",
         "kept_frames": len(reference)}
    ]
    strict_report = BadInputReport()
    assert read_clip(path, report=strict_report, allow_partial=False) is None
    assert len(strict_report.skipped) == 1
    with pytest.raises(BadMediaError, match="truncated.avi"):
        read_clip(path, report=BadInputReport(strict=True))


class _ResolutionChangingCapture:
    """Stands in for cv2.VideoCapture: 3 frames at 32x48, then frames at 40x60."""

    def __init__(self, path):
        self.index = 0

    def isOpened(self):
        return True

    def read(self):
        self.index += 1
        if self.index > 6:
            return False, None
        shape = (32, 48, 3) if self.index <= 3 else (40, 60, 3)
        return True, np.full(shape, 10 * self.index, np.uint8)

    def get(self, prop):
        if prop == cv2.CAP_PROP_POS_MSEC:
            return (self.index - 1) * 100.0
        if prop == cv2.CAP_PROP_FPS:
            return 10.0
        return 6.0 if prop == cv2.CAP_PROP_FRAME_COUNT else 0.0

    def release(self):
        self.released = True


def test_a_resolution_change_mid_file_keeps_the_frames_before_it(tmp_path, monkeypatch):
    path = tmp_path / "changing.avi"
    path.write_bytes(b"stand-in")
    monkeypatch.setattr(video.cv2, "VideoCapture", _ResolutionChangingCapture)
    report = BadInputReport()
    clip = read_clip(path, color="bgr", report=report, backend="opencv")  # the stand-in is OpenCV's
    assert clip.shape == (3, 32, 48, 3)
    assert [int(f[0, 0, 0]) for f in clip] == [10, 20, 30]
    assert report.entries[0]["kept_frames"] == 3
    assert "resolution changed from 48x32 to 60x40 at frame 3" in report.entries[0]["reason"]
    with pytest.raises(BadMediaError, match="resolution changed"):
        read_clip(path, report=BadInputReport(strict=True), backend="opencv")


def test_real_broken_file_tree_avi(shared_data):
    path = shared_data / "video" / "tree.avi"
    if not path.is_file():
        pytest.skip("tree.avi absent")
    # OpenCV counts 68 of the 444 declared frames (tests/pipelines/test_video_pyav.py:
    # the 68 span the whole 29.6 s, the others are empty index entries).
    report = BadInputReport()
    clip = read_clip(path, report=report, size=(60, 80), backend="opencv")
    assert clip.shape == (68, 60, 80, 3)
    assert report.entries[0]["kept_frames"] == 68
    assert "68 of 444" in report.entries[0]["reason"]
    with pytest.raises(BadMediaError, match="tree.avi"):
        read_clip(path, report=BadInputReport(strict=True), backend="opencv")


@pytest.mark.parametrize(
    ("name", "frames", "shape"),
    [("bikes.mp4", 250, (272, 640, 3)), ("carphone_pristine.mp4", 120, (144, 176, 3)),
     ("carphone_distorted.mp4", 120, (144, 176, 3))],
)
def test_real_videos_decode_completely(shared_data, name, frames, shape):
    path = shared_data / "video" / name
    if not path.is_file():
        pytest.skip(f"{name} absent")
    report = BadInputReport()
    count = 0
    for frame in iter_frames(path, report=report):
        assert frame.shape == shape
        count += 1
    assert count == frames and report.count == 0


def test_real_video_resampled_by_timestamps(shared_data):
    path = shared_data / "video" / "bikes.mp4"
    if not path.is_file():
        pytest.skip("bikes.mp4 absent")
    clip = read_clip(path, fps=10, size=(64, 64))
    assert clip.shape == (100, 64, 64, 3)  # 10 s at 25 fps read at 10 fps


# --------------------------------------------------------------------------- edge features, targets


def test_optical_flow_sees_rightward_motion():
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    for t in range(4):
        frames[t, 16:32, 10 + 3 * t : 26 + 3 * t] = 255
    flow = optical_flow_features(frames, grid=(1, 1))
    assert flow.shape == (4, 3)
    assert np.all(flow[0] == 0)
    assert np.all(flow[1:, 0] > 0.1)  # horizontal flow to the right
    assert np.all(np.abs(flow[1:, 1]) < np.abs(flow[1:, 0]))


def test_frame_targets_from_sidecars_and_columns(tmp_path):
    video_path = tmp_path / "a.mp4"
    assert load_frame_targets(video_path) is None
    np.save(tmp_path / "a.mp4.targets.npy", np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(load_frame_targets(video_path), [0, 1, 2])
    (tmp_path / "b.mp4.targets.csv").write_text("0.5\n1.5\n")
    np.testing.assert_array_equal(load_frame_targets(tmp_path / "b.mp4"), [0.5, 1.5])
    np.testing.assert_array_equal(load_frame_targets(video_path, "1;2;3"), [1, 2, 3])


# --------------------------------------------------------------------------- tf.data


def test_video_dataset_windows_clips_with_labels(numbered_clip, textured_clip):
    from pipelines.windows import frame_windows

    examples = [Example(os.fspath(numbered_clip), 1), Example(os.fspath(textured_clip), 0)]
    ds = video_dataset(examples, window_frames=4, hop_frames=3, fps=10, size=(16, 16), batch_size=64,
                       with_clip_index=True)
    inputs, labels = next(iter(ds))
    expected = [frame_windows(read_clip(e.path, fps=10, size=(16, 16)), window=4, hop=3) for e in examples]
    np.testing.assert_array_equal(inputs["inputs"], np.concatenate([w for w, _ in expected]))
    np.testing.assert_array_equal(inputs["mask"], np.concatenate([m for _, m in expected]))
    counts = [len(w) for w, _ in expected]
    np.testing.assert_array_equal(labels, np.repeat([1, 0], counts))
    np.testing.assert_array_equal(inputs["clip_index"], np.repeat([0, 1], counts))


def test_video_dataset_per_frame_targets_with_delay(numbered_clip, tmp_path):
    frames = _cv2_frames(numbered_clip)[0]
    clip_path = tmp_path / "clip.avi"
    clip_path.write_bytes(Path(numbered_clip).read_bytes())
    y = np.arange(len(frames), dtype=np.float32) * 10
    np.save(tmp_path / "clip.avi.targets.npy", y)
    ds = video_dataset([Example(os.fspath(clip_path))], target="frame", delay=2, fps=10,
                       window_frames=4, hop_frames=4, size=(8, 8), batch_size=16)
    inputs, targets, weights = next(iter(ds))
    # Output frame n is source frame 3n; its target is y at output frame n + 2.
    kept = np.arange(0, 30, 3)
    flat_targets = targets.numpy().reshape(-1)
    flat_weights = weights.numpy().reshape(-1)
    for n in range(len(kept)):
        if n + 2 < len(kept):
            assert flat_targets[n] == y[kept[n + 2]] and flat_weights[n] == 1
        else:
            assert flat_weights[n] == 0
    assert inputs["mask"].numpy().sum() == len(kept)


def test_video_dataset_skips_bad_files_and_reports(numbered_clip, tmp_path):
    report = BadInputReport()
    examples = [Example(os.fspath(tmp_path / "gone.avi"), 0), Example(os.fspath(numbered_clip), 1)]
    ds = video_dataset(examples, window_frames=10, hop_frames=10, size=(8, 8), batch_size=8, report=report)
    batches = list(ds)
    assert sum(len(labels) for _, labels in batches) == 3
    assert report.skipped[0]["path"].endswith("gone.avi")


# --------------------------------------------------------------------------- synthetic data


def test_synthetic_video_files_and_classes(synthetic_root):
    with open(synthetic_root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(CLASSES)
    assert {r["label"] for r in rows} == set(CLASSES)
    for row in rows:
        clip = read_clip(synthetic_root / row["path"], color="gray")
        assert clip.shape == (12, 32, 32, 1)
        # The object is the bright part: its horizontal centre and area tell the class.
        bright = clip[..., 0] > 120
        area = bright.sum(axis=(1, 2))
        cols = np.arange(32)[None, None, :]
        x_centre = (bright * cols).sum(axis=(1, 2)) / np.maximum(area, 1)
        label = row["label"]
        if label == "moving_right":
            assert x_centre[-1] > x_centre[0] + 4
        elif label == "moving_left":
            assert x_centre[-1] < x_centre[0] - 4
        elif label == "growing":
            assert area[-1] > area[0] * 1.3
        else:
            assert area[-1] < area[0] / 1.3


def test_synthetic_video_is_deterministic(tmp_path):
    a = write_synthetic_video(tmp_path / "a", n_per_class=1, size=(16, 16), n_frames=4, seed=5)
    b = write_synthetic_video(tmp_path / "b", n_per_class=1, size=(16, 16), n_frames=4, seed=5)
    for kind in CLASSES:
        name = f"{kind}/{kind}_000.avi"
        np.testing.assert_array_equal(read_clip(a / name), read_clip(b / name))


# --------------------------------------------------------------------------- frame cache


@pytest.fixture(scope="module")
def feature_layer():
    from seqapps.layers.video_frontends import FrameFeatures, FrameMotion, FramePixels

    return FrameFeatures(layers=[FramePixels(size=(4, 4)), FrameMotion(size=(16, 16), grid=(2, 2))])


def _synthetic_examples(root: Path) -> list[Example]:
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [Example(os.fspath(root / r["path"]), CLASSES.index(r["label"])) for r in rows]


def test_cache_round_trip_equals_direct_features(synthetic_root, feature_layer, tmp_path):
    examples = _synthetic_examples(synthetic_root)
    cache = write_frame_cache(examples, [0, 3, 5], tmp_path, feature_layer=feature_layer,
                              fps=8, size=(32, 32), shards=2, chunk_frames=5)
    clips = {int(c["clip_index"]): c for c in read_cached_clips(cache)}
    assert sorted(clips) == [0, 3, 5]  # clip_index is the source index (issue 15)
    for index in [0, 3, 5]:
        frames = read_clip(examples[index].path, fps=8, size=(32, 32))
        direct = np.asarray(feature_layer(frames[None]))[0]
        np.testing.assert_allclose(clips[index]["features"].numpy(), direct, atol=1e-5)
        assert int(clips[index]["label"]) == examples[index].label
        assert clips[index]["id"].numpy().decode() == examples[index].path
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    # Same files and settings: the cache is reused, not rewritten.
    stamp = (cache / "manifest.json").stat().st_mtime_ns
    again = write_frame_cache(examples, [0, 3, 5], tmp_path, feature_layer=feature_layer,
                              fps=8, size=(32, 32), shards=2, chunk_frames=5)
    assert again == cache and (cache / "manifest.json").stat().st_mtime_ns == stamp
    other = write_frame_cache(examples, [0, 3, 5], tmp_path, feature_layer=feature_layer,
                              fps=6, size=(32, 32), shards=2)
    assert other != cache


def test_windows_from_cache_equal_windows_from_decoding(synthetic_root, feature_layer, tmp_path):
    examples = _synthetic_examples(synthetic_root)
    indices = [1, 2, 6]
    cache = write_frame_cache(examples, indices, tmp_path, feature_layer=feature_layer,
                              size=(32, 32), shards=1)
    cached_inputs, cached_labels = next(iter(read_frame_cache(
        cache, window_frames=5, hop_frames=3, batch_size=100, with_clip_index=True)))
    direct_inputs, direct_labels = next(iter(video_dataset(
        examples, indices=indices, window_frames=5, hop_frames=3, size=(32, 32), batch_size=100,
        feature_layer=feature_layer, with_clip_index=True)))
    np.testing.assert_allclose(cached_inputs["inputs"], direct_inputs["inputs"], atol=1e-5)
    np.testing.assert_array_equal(cached_inputs["mask"], direct_inputs["mask"])
    np.testing.assert_array_equal(cached_inputs["clip_index"], direct_inputs["clip_index"])
    np.testing.assert_array_equal(cached_labels, direct_labels)
    np.testing.assert_array_equal(
        np.unique(cached_labels), sorted({examples[i].label for i in indices})
    )


def test_cache_frame_targets_quantisation_and_bad_files(synthetic_root, tmp_path):
    from seqapps.layers.video_frontends import FramePixels

    examples = _synthetic_examples(synthetic_root)[:2]
    for example in examples:  # per-frame targets in a CSV-like column
        example.targets = " ".join(str(v) for v in range(100, 112))
    examples.append(Example(os.fspath(tmp_path / "gone.avi"), 0, "1 2"))
    report = BadInputReport()
    layer = FramePixels(size=(2, 2))
    cache = write_frame_cache(examples, None, tmp_path / "cache", feature_layer=layer,
                              size=(32, 32), quantize=(0.0, 1.0), report=report)
    assert report.skipped[0]["path"].endswith("gone.avi")
    ds = read_frame_cache(cache, window_frames=4, hop_frames=4, batch_size=100, target="frame", delay=1)
    inputs, targets, weights = next(iter(ds))
    assert inputs["inputs"].shape == (6, 4, 12)
    np.testing.assert_array_equal(targets[0], [101, 102, 103, 104])
    np.testing.assert_array_equal(weights[2], [1, 1, 1, 0])  # frame 11 has no y(12)
    direct = np.asarray(layer(read_clip(examples[0].path, size=(32, 32))[None]))[0]
    np.testing.assert_allclose(inputs["inputs"].numpy()[:3].reshape(12, 12), direct, atol=0.5 / 255 + 1e-6)


def test_synthetic_manifest_through_sources_and_the_cache(synthetic_root, tmp_path):
    from pipelines.sources import from_manifest
    from seqapps.layers.video_frontends import ColorHistogram

    source = from_manifest(synthetic_root / "manifest.csv", task="classify")
    assert source.class_names == sorted(CLASSES)
    ids = source.labels_as_ids()
    cache = write_frame_cache(source, [0, 7], tmp_path, feature_layer=ColorHistogram(bins=4),
                              size=(32, 32))
    ds = read_frame_cache(cache, window_frames=12, hop_frames=12, batch_size=8, with_clip_index=True)
    inputs, labels = next(iter(ds))
    np.testing.assert_array_equal(labels, [ids[0], ids[7]])
    np.testing.assert_allclose(inputs["inputs"].numpy().sum(axis=-1), 3.0, rtol=1e-5)
    import json

    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["class_names"] == source.class_names and manifest["n_clips"] == 2


def test_clip_regression_targets(numbered_clip):
    examples = [Example(os.fspath(numbered_clip), None, (0.25, 4.0))]
    ds = video_dataset(examples, target="clip_targets", window_frames=30, hop_frames=30, size=(8, 8))
    _, labels = next(iter(ds))
    np.testing.assert_array_equal(labels, [[0.25, 4.0]])


def test_frame_cache_build_reports_progress_once_per_stage(synthetic_root, feature_layer, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.setenv("SEQAPPS_PROGRESS", "1")  # also for a stage this small
    examples = _synthetic_examples(synthetic_root)
    write_frame_cache(examples, [0, 3, 5], tmp_path, feature_layer=feature_layer, fps=8, size=(32, 32))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("video frame features")]
    assert len(lines) == 1 and lines[0].startswith("video frame features: 3 clips in "), lines
