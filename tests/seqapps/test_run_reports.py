"""One bad-input report per run: `--folds` prints the summary once and writes RUN/bad_inputs.json,
and split.csv names the files rejected while listing the folder (empty file, dangling link)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.report import BadInputReport
from pipelines.sources import DataSource, Example, read_split, write_split

TINY = {"model": {"units": 4, "dropout": 0.0}, "training": {"batch_size": 16, "patience": 50},
        "data": {"n_mels": 16}}


def _run(*args, timeout=900):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "seqapps", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _rows(path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return {Path(r["path"]).name: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def speakers_with_bad_files(tmp_path_factory):
    """2 classes x 4 speakers x 2 clips, plus an empty file, a dangling link (both rejected
    while listing) and a text file named .wav (rejected when decoded)."""
    import soundfile

    from pipelines.synthetic_audio import synthesize_clip

    folder = tmp_path_factory.mktemp("speakers")
    rng = np.random.default_rng(0)
    for label in ("rising_chirp", "pulse_train"):
        (folder / label).mkdir()
        for speaker in ("ann", "bob", "cid", "dan"):
            for n in range(2):
                clip = synthesize_clip(label, seconds=0.3, rng=rng)
                soundfile.write(folder / label / f"{label[0]}_{speaker}_{n}.wav", clip, 16000)
    (folder / "rising_chirp" / "r_ann_7.wav").write_bytes(b"")
    os.symlink(folder / "nowhere.wav", folder / "rising_chirp" / "r_bob_8.wav")
    (folder / "pulse_train" / "p_cid_9.wav").write_text("not audio, just a note\n" * 50)
    config = folder.parent / "tiny.json"
    config.write_text(json.dumps(TINY))
    return folder, config


@pytest.mark.slow
def test_folds_print_one_summary_and_write_one_run_report(speakers_with_bad_files, tmp_path):
    folder, config = speakers_with_bad_files
    run_dir = tmp_path / "run"
    args = ("train", "audio", folder, "--run-dir", run_dir, "--folds", 2, "--group-pattern", "digits",
            "--epochs", 1, "--config", config)
    result = _run(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("skipped by reason:") == 1, result.stderr
    assert "skipped by reason" not in result.stdout
    bad = json.loads((run_dir / "bad_inputs.json").read_text())
    reasons = {Path(e["path"]).name: e["reason"] for e in bad["entries"]}
    assert set(reasons) == {"r_ann_7.wav", "r_bob_8.wav", "p_cid_9.wav"}
    assert reasons["r_ann_7.wav"] == "empty file (0 bytes)"
    assert reasons["r_bob_8.wav"].startswith("dangling link (points to ")
    assert reasons["p_cid_9.wav"].startswith("not decodable as audio")
    assert bad["by_reason"] == {"empty file": 1, "dangling link": 1, "not decodable": 1} or set(bad["by_reason"]) == {
        "empty file", "dangling link", "not decodable"}
    for k in range(2):  # each fold's split.csv marks all three, the listing rejects with no split
        rows = _rows(run_dir / "cv" / f"fold_{k}" / "split.csv")
        assert rows["r_ann_7.wav"]["split"] == "" and rows["r_ann_7.wav"]["skipped"] == "empty file (0 bytes)"
        assert rows["r_ann_7.wav"]["label"] == "rising_chirp"
        assert rows["r_bob_8.wav"]["split"] == "" and rows["r_bob_8.wav"]["skipped"].startswith("dangling link")
        assert rows["p_cid_9.wav"]["split"] in ("train", "val", "test")
        assert rows["p_cid_9.wav"]["skipped"].startswith("not decodable as audio")
        assert sum(r["skipped"] == "" for r in rows.values()) == 16
    # Resumed (every fold done): nothing is trained again, the summary is still printed once.
    again = _run(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("skipped by reason:") == 1, again.stderr


def test_split_csv_keeps_files_rejected_at_listing_and_reads_back(tmp_path):
    """write_split adds a row with an empty split for a skipped file in no split;
    read_split (what a resumed run reads) leaves it out of the examples."""
    a, b = tmp_path / "yes" / "a.wav", tmp_path / "yes" / "b.wav"
    a.parent.mkdir()
    a.write_bytes(b"RIFF")
    b.write_bytes(b"RIFF")
    empty, gone = tmp_path / "yes" / "empty.wav", tmp_path / "elsewhere" / "gone.wav"
    empty.write_bytes(b"")
    source = DataSource([Example(str(a), "yes", None, None, None), Example(str(b), "yes", None, None, None)],
                        ["yes"], None, "classify")
    skipped = {str(b): "no audio stream (the file holds: video h264)", str(empty): "empty file (0 bytes)",
               str(gone): "dangling link (points to x, which does not exist)"}
    write_split(tmp_path / "split.csv", source, {"train": [0], "val": [1]}, skipped=skipped)
    with open(tmp_path / "split.csv", newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    assert lines == [
        ["path", "label", "group", "split", "skipped"],
        [str(a), "yes", "", "train", ""],
        [str(b), "yes", "", "val", "no audio stream (the file holds: video h264)"],
        # then the files in no split, by path; a label only when their folder is a class
        [str(gone), "", "", "", "dangling link (points to x, which does not exist)"],
        [str(empty), "yes", "", "", "empty file (0 bytes)"],
    ]
    report = BadInputReport()
    back = read_split(tmp_path / "split.csv", report=report)
    assert [(e.path, e.split) for e in back.examples] == [(str(a), "train"), (str(b), "val")]


def test_evaluation_reads_the_waveform_cache_and_says_so(tmp_path, monkeypatch, capsys):
    """A training run's val/test clips are read back from its cache ("read audio cache"),
    the same samples decode_files gives; without a cache they are decoded ("decode audio")."""
    import soundfile

    from pipelines.audio import build_cache, decode_files
    from seqapps.runs.data import _cached_or_decoded

    rng = np.random.default_rng(1)
    paths = []
    for k, seconds in enumerate([0.5, 0.3, 0.7]):
        paths.append(str(tmp_path / f"c{k}.wav"))
        soundfile.write(paths[-1], (0.1 * rng.standard_normal(int(22050 * seconds))).astype(np.float32), 22050)
    (tmp_path / "bad.wav").write_bytes(b"")
    paths.insert(1, str(tmp_path / "bad.wav"))
    monkeypatch.setenv("SEQAPPS_PROGRESS", "1")
    expected = decode_files(paths, sample_rate=16000, report=BadInputReport())
    build_cache(paths, cache_dir=tmp_path / "cache", sample_rate=16000, report=BadInputReport())
    capsys.readouterr()
    report = BadInputReport()
    cached = _cached_or_decoded(paths, sample_rate=16000, cache_dir=tmp_path / "cache", report=report)
    err = capsys.readouterr().err
    assert "read audio cache: 3 files in " in err and "decode audio" not in err
    assert [os.path.basename(e["path"]) for e in report.skipped] == ["bad.wav"]
    assert cached[1] is None and expected[1] is None
    for got, want in zip(cached, expected, strict=True):
        if want is not None:
            np.testing.assert_array_equal(got, want)
    decoded = _cached_or_decoded(paths, sample_rate=16000, cache_dir=tmp_path / "other", report=BadInputReport())
    assert "decode audio: 4 files in " in capsys.readouterr().err
    np.testing.assert_array_equal(decoded[2], expected[2])
