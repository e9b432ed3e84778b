"""One meaning of ``report=None`` in pipelines (issue 15): strict.

Every entry point that can meet a bad input (sources, audio decoding and its cache and
dataset, video decoding and its dataset and frame cache) raises ``BadMediaError`` naming
the file when it is given no report, and skips and records the file when it is given a
lenient ``BadInputReport()``. The two datasets take the same report arguments.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from pipelines.audio import audio_dataset, build_cache, decode_files
from pipelines.frame_cache import write_frame_cache
from pipelines.report import BadInputReport
from pipelines.sources import DataSource, Example, from_directory, from_manifest
from pipelines.video import iter_frames, read_clip, video_dataset
from seqapps.errors import BadMediaError
from seqapps.layers.video_frontends import FramePixels

SR = 8000


@pytest.fixture
def audio_tree(tmp_path) -> Path:
    """data/yes/good.wav (0.5 s tone) and data/yes/empty.wav (0 bytes)."""
    folder = tmp_path / "data" / "yes"
    folder.mkdir(parents=True)
    sf.write(folder / "good.wav", np.sin(np.arange(SR // 2) / 5.0).astype(np.float32), SR)
    (folder / "empty.wav").write_bytes(b"")
    return tmp_path / "data"


@pytest.fixture
def video_files(tmp_path) -> tuple[Path, Path]:
    """(a 6-frame 16x16 MJPG clip, a file that is not a video)."""
    good = tmp_path / "good.avi"
    writer = cv2.VideoWriter(os.fspath(good), cv2.VideoWriter_fourcc(*"MJPG"), 10, (16, 16))
    for i in range(6):
        writer.write(np.full((16, 16, 3), 40 * i, np.uint8))
    writer.release()
    bad = tmp_path / "text.avi"
    bad.write_text("not a video")
    return good, bad


def _source(paths) -> DataSource:
    examples = [Example(os.fspath(p), "yes", None, None, None) for p in paths]
    return DataSource(examples, ["yes"], None, "classify")


def test_sources_without_a_report_are_strict(audio_tree):
    with pytest.raises(BadMediaError, match=r"empty\.wav: empty file"):
        from_directory(audio_tree, extensions=(".wav",))
    manifest = audio_tree / "list.csv"
    manifest.write_text("path,label\nyes/good.wav,yes\nyes/gone.wav,yes\n")
    with pytest.raises(BadMediaError, match=r"gone\.wav: file not found"):
        from_manifest(manifest)
    # A lenient report: the file is skipped and recorded, the rest is kept.
    report = BadInputReport()
    source = from_directory(audio_tree, extensions=(".wav",), report=report)
    assert [Path(p).name for p in source.paths] == ["good.wav"]
    assert [Path(e["path"]).name for e in report.entries] == ["empty.wav"]


def test_audio_without_a_report_is_strict(audio_tree, tmp_path):
    paths = [audio_tree / "yes" / "good.wav", audio_tree / "yes" / "empty.wav"]
    with pytest.raises(BadMediaError, match=r"empty\.wav"):
        decode_files(paths, sample_rate=SR, executor="serial")
    with pytest.raises(BadMediaError, match=r"empty\.wav"):
        build_cache(paths, cache_dir=tmp_path / "cache", sample_rate=SR, executor="serial")
    with pytest.raises(BadMediaError, match=r"empty\.wav"):
        audio_dataset(_source(paths), sample_rate=SR, window_seconds=0.25, hop_seconds=0.25, batch_size=4,
                      executor="serial")
    report = BadInputReport()
    ds = audio_dataset(_source(paths), sample_rate=SR, window_seconds=0.25, hop_seconds=0.25, batch_size=4,
                       executor="serial", report=report, print_summary=False)
    assert sum(int(x["inputs"].shape[0]) for x, _ in ds) == 2  # the good clip: 0.5 s = 2 windows
    assert [Path(e["path"]).name for e in report.entries] == ["empty.wav"]


def test_video_without_a_report_is_strict(video_files, tmp_path):
    good, bad = video_files
    with pytest.raises(BadMediaError, match=r"text\.avi"):
        read_clip(bad)
    with pytest.raises(BadMediaError, match=r"text\.avi"):
        list(iter_frames(bad))
    # tf.data's from_generator re-raises the generator's BadMediaError as its own error
    # type, with the original message.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"BadMediaError: .*text\.avi"):
        list(video_dataset(_source([good, bad]), window_frames=3, hop_frames=3, size=(8, 8)))
    with pytest.raises(BadMediaError, match=r"text\.avi"):
        write_frame_cache(_source([good, bad]), None, tmp_path / "cache", size=(8, 8),
                          feature_layer=FramePixels(size=(4, 4)))
    report = BadInputReport()
    batches = list(video_dataset(_source([good, bad]), window_frames=3, hop_frames=3, size=(8, 8),
                                 report=report))
    assert sum(len(labels) for _, labels in batches) == 2  # the good clip: 6 frames = 2 windows
    assert [Path(e["path"]).name for e in report.entries] == ["text.avi"]


def test_audio_and_video_datasets_take_the_same_report_arguments():
    for function in (audio_dataset, video_dataset):
        parameters = inspect.signature(function).parameters
        assert parameters["report"].default is None
        assert parameters["report"].kind is inspect.Parameter.KEYWORD_ONLY
        assert "strict" not in parameters  # strictness is the report's, not a second argument
