"""The PyAV (FFmpeg) frame reader: exact timestamps, rotation, codecs OpenCV cannot open.

References: the timestamps and pixels written (pipelines.encode), OpenCV's decode of the
same file, nearest-timestamp selection computed by hand with NumPy.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from pipelines import video_av
from pipelines.encode import write_audio, write_video
from pipelines.report import BadInputReport
from pipelines.video import DEFAULT_BACKEND, iter_frames, read_clip
from seqapps.errors import BadMediaError, ConfigError

TIMES = [0.0, 0.04, 0.08, 0.2, 0.25, 0.5, 0.52, 0.9, 1.3, 1.34]  # variable frame rate, seconds


def _frames(n=10, h=48, w=64, seed=0):  # 10 = len(TIMES)
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return np.stack([np.roll(base, 4 * k, axis=1) for k in range(n)])


def test_pyav_is_the_default():
    assert DEFAULT_BACKEND == "pyav"
    with pytest.raises(ConfigError, match="`backend` must be one of"):
        read_clip("x.mp4", backend="gstreamer")


@pytest.mark.parametrize("codec,name", [("libx264", "vfr.mp4"), ("libvpx-vp9", "vfr.webm"), ("ffv1", "vfr.mkv")])
def test_timestamps_are_the_written_ones(tmp_path, codec, name):
    written = write_video(tmp_path / name, _frames(), times=TIMES, codec=codec)
    problems = []
    stamps = [ms for _, _, ms in video_av.raw_frames(tmp_path / name, problems)]
    np.testing.assert_allclose(stamps, np.asarray(written) * 1000, atol=1e-6)
    assert problems == []


def test_resampling_a_vfr_clip_keeps_the_frame_nearest_each_time(tmp_path):
    frames = _frames()
    write_video(tmp_path / "vfr.mkv", frames, times=TIMES, codec="ffv1", pix_fmt="bgr0")  # lossless
    clip = read_clip(tmp_path / "vfr.mkv", fps=10, color="rgb")
    targets = np.arange(0, TIMES[-1] + 1e-9, 0.1)
    # nearest frame in time, ties to the earlier one (as pipelines.video._resample)
    nearest = [int(np.argmin(np.abs(np.asarray(TIMES) - t) + 1e-9 * np.arange(len(TIMES)))) for t in targets]
    assert len(clip) == len(targets)
    np.testing.assert_array_equal(clip, frames[nearest])


def test_rotation_flag_turns_frames_upright(tmp_path):
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    frames[:, :12, :16] = 255  # a white corner, top left as stored
    write_video(tmp_path / "phone.mp4", frames, fps=10, rotation=90)
    clip = read_clip(tmp_path / "phone.mp4")
    assert clip.shape == (4, 64, 48, 3)  # portrait, as a player shows it
    np.testing.assert_allclose(clip[0].astype(float), np.rot90(frames[0]).astype(float), atol=12)
    np.testing.assert_array_equal(clip, read_clip(tmp_path / "phone.mp4", backend="opencv"))


def test_same_pixels_as_opencv_on_an_mjpeg_avi(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for frame in _frames(8):
        writer.write(frame)
    writer.release()
    np.testing.assert_array_equal(read_clip(path, color="bgr"), read_clip(path, color="bgr", backend="opencv"))


def test_av1_opens_where_opencv_cannot(tmp_path):
    frames = _frames(6)
    try:
        write_video(tmp_path / "clip.mp4", frames, fps=10, codec="libsvtav1")
    except Exception as error:  # an FFmpeg build without the encoder
        pytest.skip(f"no AV1 encoder: {error}")
    clip = read_clip(tmp_path / "clip.mp4", color="rgb")
    assert clip.shape == (6, 48, 64, 3)
    assert np.abs(clip.astype(float) - frames).mean() < 20  # lossy
    if cv2.VideoCapture(os.fspath(tmp_path / "clip.mp4")).read()[0]:
        pytest.skip("this OpenCV build decodes AV1 too")


def test_resolution_change_and_no_video_stream(tmp_path):
    with open(tmp_path / "change.mjpeg", "wb") as f:  # a stream of JPEGs whose size changes
        for k, (h, w) in enumerate([(48, 64)] * 3 + [(60, 80)] * 3):
            f.write(cv2.imencode(".jpg", np.full((h, w, 3), 40 * k, np.uint8))[1].tobytes())
    report = BadInputReport()
    clip = read_clip(tmp_path / "change.mjpeg", color="bgr", report=report)
    assert clip.shape == (3, 48, 64, 3)
    assert report.entries == [{"path": os.fspath(tmp_path / "change.mjpeg"),
                               "reason": "resolution changed from 64x48 to 80x60 at frame 3", "kept_frames": 3}]
    write_audio(tmp_path / "song.m4a", np.zeros(16000, np.float32), sample_rate=16000, codec="aac")
    report = BadInputReport()
    assert list(iter_frames(tmp_path / "song.m4a", report=report)) == []
    assert report.entries[0]["reason"] == "no video stream (the file holds: audio aac)"
    (tmp_path / "notes.mp4").write_text("not a video\n" * 10)
    with pytest.raises(BadMediaError, match=r"notes\.mp4: cannot be opened as a video"):
        read_clip(tmp_path / "notes.mp4")


def test_tree_avi_is_complete_its_frames_are_sparse(shared_data):
    path = shared_data / "video" / "tree.avi"
    if not path.is_file():
        pytest.skip("tree.avi absent")
    problems = []
    stamps = [ms for _, _, ms in video_av.raw_frames(path, problems)]
    # 68 distinct images over the whole declared 29.6 s (444 entries at 15 fps, most empty)
    assert len(stamps) == 68 and problems == []
    assert stamps[0] == 0 and 29_400 < stamps[-1] < 29_600
    report = BadInputReport()
    clip = read_clip(path, fps=15, size=(60, 80), report=report)
    assert report.entries == [] and abs(len(clip) - 444) <= 1


@pytest.mark.parametrize("name", ["bikes.mp4", "carphone_pristine.mp4", "vtest.avi"])
def test_real_videos_same_pixels_and_times_as_opencv(shared_data, name):
    path = shared_data / "video" / name
    if not path.is_file():
        pytest.skip(f"{name} absent")
    ours = list(video_av.raw_frames(path, []))[:60]
    capture = cv2.VideoCapture(os.fspath(path))
    for frame, _, ms in ours:
        ok, reference = capture.read()
        assert ok
        np.testing.assert_array_equal(frame, reference)
        assert abs(ms - capture.get(cv2.CAP_PROP_POS_MSEC)) < 1e-3
    capture.release()
