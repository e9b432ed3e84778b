"""The frame reader is a choice of the application: `write_frame_cache(backend=...)`, part of
the cache key, set by `data.video_backend`; a cache hit reports its skipped files again."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from pipelines.frame_cache import read_cached_clips, read_manifest, write_frame_cache
from pipelines.report import BadInputReport
from pipelines.sources import DataSource, Example
from seqapps.errors import ConfigError


def _mjpeg_avi(path, n=8, seed=0):
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for _ in range(n):
        writer.write(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture
def clips(tmp_path):
    paths = [_mjpeg_avi(tmp_path / f"clip{k}.avi", seed=k) for k in range(2)]
    (tmp_path / "notes.avi").write_text("not a video\n" * 30)
    examples = [Example(os.fspath(p), "a", None, None, None) for p in [*paths, tmp_path / "notes.avi"]]
    return DataSource(examples, ["a"], None, "classify")


def _layer():
    from seqapps.layers.video_frontends import FramePixels

    return FramePixels(size=(8, 8), grayscale=True, normalization="unit")


def test_opencv_and_pyav_caches_have_different_keys_and_the_same_pixels(clips, tmp_path):
    layer = _layer()
    common = dict(feature_layer=layer, fps=None, size=(24, 32))
    opencv = write_frame_cache(clips, [0, 1], tmp_path / "cache", backend="opencv", report=BadInputReport(), **common)
    pyav = write_frame_cache(clips, [0, 1], tmp_path / "cache", backend="pyav", report=BadInputReport(), **common)
    default = write_frame_cache(clips, [0, 1], tmp_path / "cache", report=BadInputReport(), **common)
    assert opencv.name != pyav.name and default == pyav  # None is the default reader, PyAV
    assert read_manifest(opencv)["settings"]["backend"] == "opencv"
    assert read_manifest(pyav)["settings"]["backend"] == "pyav"
    # MJPEG decodes to the same pixels in both readers, so the cached features agree.
    for a, b in zip(read_cached_clips(opencv), read_cached_clips(pyav), strict=True):
        np.testing.assert_array_equal(a["features"], b["features"])


def test_a_bad_backend_is_a_clear_error(clips, tmp_path):
    with pytest.raises(ConfigError, match=r"`backend` must be one of \('pyav', 'opencv'\). Received: backend='cv2'"):
        write_frame_cache(clips, None, tmp_path / "cache", feature_layer=_layer(), backend="cv2")
    from seqapps.runs.settings import resolve_settings

    assert resolve_settings("video")["data"]["video_backend"] == "pyav"
    assert resolve_settings("video", overrides={"data": {"video_backend": "opencv"}})["data"]["video_backend"] == "opencv"
    with pytest.raises(ConfigError, match=r"`data.video_backend` must be one of 'pyav', 'opencv'. "
                                          r"Received: video_backend='ffmpeg'"):
        resolve_settings("video", overrides={"data": {"video_backend": "ffmpeg"}})
    with pytest.raises(ConfigError, match="unknown setting `data.video_backend`"):  # audio has no frame reader
        resolve_settings("audio", overrides={"data": {"video_backend": "pyav"}})


def test_the_training_path_reads_with_the_setting(clips, tmp_path):
    from seqapps.runs import data as run_data
    from seqapps.runs.settings import resolve_settings

    for backend in ("opencv", "pyav"):
        settings = resolve_settings("video", overrides={"data": {"video_backend": backend, "size": [24, 32]}})
        report = BadInputReport()
        cache_dir = tmp_path / backend
        run_data.make_dataset("video", clips, [0, 1, 2], data=settings["data"], frontend=_layer(), batch_size=2,
                              shuffle=False, seed=0, cache_dir=cache_dir, report=report)
        (folder,) = [p for p in cache_dir.iterdir() if p.is_dir()]
        assert read_manifest(folder)["settings"]["backend"] == backend
        assert [os.path.basename(e["path"]) for e in report.skipped] == ["notes.avi"]


def test_a_cache_hit_reports_the_skipped_files_again(clips, tmp_path):
    common = dict(feature_layer=_layer(), fps=None, size=(24, 32))
    first = BadInputReport()
    folder = write_frame_cache(clips, None, tmp_path / "cache", report=first, **common)
    assert [os.path.basename(e["path"]) for e in first.skipped] == ["notes.avi"]
    again = BadInputReport()
    assert write_frame_cache(clips, None, tmp_path / "cache", report=again, **common) == folder
    assert again.entries == first.entries
    with pytest.raises(Exception, match="notes.avi"):  # strict: the first skipped file is an error
        write_frame_cache(clips, None, tmp_path / "cache", report=None, **common)


def test_opencv_prints_no_raw_ffmpeg_log(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "notes.mp4").write_text("not a video\n" * 30)
    code = ("from pipelines.report import BadInputReport; from pipelines.video import read_clip; r = BadInputReport(); "
            f"print(read_clip({str(tmp_path / 'notes.mp4')!r}, backend='opencv', report=r), r.entries[0]['reason'])")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None cannot be opened as a video (unreadable or not a video file)"
    assert "moov atom" not in result.stderr


def test_the_settings_know_the_same_backends_as_the_reader():
    from pipelines.video import BACKENDS
    from seqapps.runs.settings import VIDEO_BACKENDS

    assert VIDEO_BACKENDS == BACKENDS
