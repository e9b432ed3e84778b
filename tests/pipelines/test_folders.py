"""Folders as users have them: links, hidden and AppleDouble files, case, unicode; progress lines."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from pipelines.progress import progress
from pipelines.report import BadInputReport
from pipelines.sources import from_directory, from_manifest


def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(160, np.float32), 16000)
    return path


def test_folders_as_users_have_them(tmp_path):
    root = tmp_path / "données"
    _wav(root / "chat" / "miaou 1.WAV")                      # spaces, upper-case extension
    _wav(root / "chat" / "été" / "ça va.flac")                # unicode folder and name
    _wav(root / "chien" / "wouf.Wav")
    (root / "chien" / "._wouf.Wav").write_bytes(b"\0\x05\x16\x07AppleDouble")  # macOS resource fork
    (root / "chien" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    _wav(root / "chien" / ".hidden" / "h.wav")                # hidden folder
    _wav(root / "__MACOSX" / "chien" / "._x.wav")              # zip archives from a Mac: not a class
    outside = _wav(tmp_path / "elsewhere" / "linked.wav")
    os.symlink(outside, root / "chat" / "link to file.wav")   # followed
    os.symlink(tmp_path / "elsewhere", root / "chien" / "linked folder")  # followed
    os.symlink(tmp_path / "gone.wav", root / "chat" / "dangling.wav")    # reported
    os.symlink(root / "chat", root / "chat" / "été" / "loop")  # a loop: each real folder once
    report = BadInputReport()
    source = from_directory(root, extensions=(".wav", ".flac"), report=report)
    assert source.class_names == ["chat", "chien"]
    names = sorted(os.path.relpath(p, root) for p in source.paths)
    assert names == sorted([
        "chat/miaou 1.WAV", "chat/été/ça va.flac", "chat/link to file.wav",
        "chien/wouf.Wav", "chien/linked folder/linked.wav",
    ])
    assert report.entries == [{"path": str(root / "chat" / "dangling.wav"),
                               "reason": f"dangling link (points to {tmp_path / 'gone.wav'}, which does not exist)"}]


def test_manifest_names_a_dangling_link(tmp_path):
    _wav(tmp_path / "a.wav")
    os.symlink(tmp_path / "moved.wav", tmp_path / "b.wav")
    (tmp_path / "list.csv").write_text("path,label\na.wav,x\nb.wav,y\n", encoding="utf-8")
    report = BadInputReport()
    source = from_manifest(tmp_path / "list.csv", report=report)
    assert source.paths == [str(tmp_path / "a.wav")]
    assert report.entries[0]["reason"].startswith("dangling link (points to ")
    assert report.entries[0]["reason"].endswith("line 3)")


def test_report_replays_a_cached_entry_once_and_counts_by_reason():
    report = BadInputReport()
    report.add("a.m4a", "truncated after 1.00 s (the mp4 header declares 2.00 s)")
    report.extend([{"path": "a.m4a", "reason": "truncated after 1.00 s (the mp4 header declares 2.00 s)"}])  # cache
    report.add("b.mp4", "no audio stream (the file holds: video h264)")
    report.add("c.mp4", "no audio stream (the file holds: video vp9)")
    report.warn("libav.mp3float: Header missing", path="d.mp3")
    assert report.count == 3
    assert report.counts_by_reason() == {"no audio stream": 2, "truncated": 1}
    lines = report.summary().splitlines()
    assert lines[:5] == [
        "skipped by reason: 2 no audio stream, 1 truncated",
        "3 input files skipped:",
        "  b.mp4: no audio stream (the file holds: video h264)",
        "  c.mp4: no audio stream (the file holds: video vp9)",
        "  a.m4a: truncated after 1.00 s (the mp4 header declares 2.00 s)",
    ]
    assert lines[5].startswith("1 library warning while decoding (1 file)")
    assert lines[6] == "  1 x libav.mp3float: Header missing"
    assert report.to_dict()["by_reason"] == {"no audio stream": 2, "truncated": 1}


def test_progress_is_one_line_per_stage_when_not_a_terminal():
    stream = io.StringIO()  # not a TTY, like a CI log
    with progress(total=30, description="decode audio", unit="file", stream=stream) as bar:
        for _ in range(30):
            bar.update(1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("decode audio: 30 files in ") and "files/s" in lines[0]
    quiet = io.StringIO()
    with progress(total=3, description="decode audio", unit="file", stream=quiet) as bar:
        bar.update(3)  # too small a stage to report
    assert quiet.getvalue() == ""


def test_progress_is_a_tqdm_bar_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with progress(total=40, description="evaluate", unit="file", stream=stream) as bar:
        bar.update(40)
    text = stream.getvalue()
    assert "evaluate" in text and "40/40" in text and "\r" in text  # tqdm redraws in place
    monkeypatch.setenv("SEQAPPS_PROGRESS", "0")
    silent = Terminal()
    with progress(total=40, description="evaluate", unit="file", stream=silent) as bar:
        bar.update(40)
    assert silent.getvalue() == ""
