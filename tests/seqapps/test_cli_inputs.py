"""The command line on the files users have: misnamed AAC, broken links, videos without sound.

One summary per run on stderr, bad_inputs.json and split.csv naming each skipped file with
its true reason, `--json` output that parses, and a `--run-dir` that is a file.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipelines.encode import write_audio, write_video
from seqapps.cli import main

TINY = {"model": {"units": 8}, "training": {"batch_size": 16, "learning_rate": 0.01, "patience": 50}}


def _run(*args, timeout=600):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "SEQAPPS_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "seqapps", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def messy_set(tmp_path_factory):
    """The synthetic classes plus what a phone, a Mac and a careless copy leave behind."""
    from pipelines.synthetic_audio import write_synthetic_audio

    folder = tmp_path_factory.mktemp("messy")
    write_synthetic_audio(folder, n_per_class=6, seconds=0.5, seed=1)
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    first = classes[0]
    wav = sorted(first.glob("*.wav"))[0]
    samples, rate = sf.read(wav, dtype="float32")
    write_audio(first / "phone recording.mp3", samples, sample_rate=rate, codec="aac", container="mp4")  # AAC
    write_audio(classes[1] / "real.mp3", samples, sample_rate=rate, codec="libmp3lame")  # an MP3 that is one
    # AAC of noise named .mp3: libsndfile's mpg123 printed "Note: Illegal Audio-MPEG-Header" on it
    noise = 0.3 * np.random.default_rng(0).standard_normal(len(samples)).astype(np.float32)
    write_audio(classes[1] / "call.mp3", noise, sample_rate=rate, codec="aac", container="mp4")
    write_video(first / "screen.m4a", np.zeros((4, 32, 48, 3), np.uint8), fps=10)  # no audio stream
    os.symlink(folder / "deleted.wav", first / "moved away.wav")
    (first / "._phone recording.mp3").write_bytes(b"\0\x05\x16\x07 AppleDouble")
    (first / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    config = folder.parent / "tiny.json"
    config.write_text(json.dumps(TINY))
    return folder, config


@pytest.fixture(scope="module")
def messy_run(messy_set, tmp_path_factory):
    folder, config = messy_set
    run_dir = tmp_path_factory.mktemp("run")
    result = _run("train", "audio", folder, "--run-dir", run_dir, "--epochs", 1, "--config", config)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def test_train_skips_only_the_bad_files_and_says_why_once(messy_set, messy_run):
    folder, _ = messy_set
    run_dir, result = messy_run
    bad = json.loads((run_dir / "bad_inputs.json").read_text())
    reasons = {Path(e["path"]).name: e["reason"] for e in bad["entries"]}
    assert set(reasons) == {"screen.m4a", "moved away.wav"}  # the AAC named .mp3 is used
    assert reasons["screen.m4a"] == "no audio stream (the file holds: video h264)"
    assert reasons["moved away.wav"].startswith("dangling link (points to ")
    assert bad["by_reason"] == {"dangling link": 1, "no audio stream": 1} or bad["by_reason"] == {
        "no audio stream": 1, "dangling link": 1}
    assert result.stderr.count("skipped by reason:") == 1 and "Traceback" not in result.stderr
    # libsndfile's mpg123 printed its notes on the AAC named .mp3 (fit_band_to_files' headers)
    assert "Note: Illegal" not in result.stderr and "mpg123" not in result.stderr
    assert "resync" not in result.stderr
    assert "skipped by reason" not in result.stdout
    assert "decode audio: " in result.stderr  # one progress line per decoding stage
    with open(run_dir / "split.csv", newline="", encoding="utf-8") as f:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(f)}
    assert "phone recording.mp3" in rows and rows["phone recording.mp3"]["skipped"] == ""
    assert rows["real.mp3"]["skipped"] == "" and rows["call.mp3"]["skipped"] == ""
    if "screen.m4a" in rows:  # listed in a split, then skipped: marked so
        assert rows["screen.m4a"]["skipped"].startswith("no audio stream")
    assert "._phone recording.mp3" not in rows and ".DS_Store" not in rows


def test_evaluate_json_is_only_json_when_files_are_skipped(messy_set, messy_run):
    folder, _ = messy_set
    run_dir, _ = messy_run
    result = _run("evaluate", run_dir, folder, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout)  # the whole of stdout is one JSON object
    assert {Path(e["path"]).name for e in metrics["skipped_files"]} == {"screen.m4a", "moved away.wav"}
    assert result.stderr.count("skipped by reason:") == 1


def test_run_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "run.txt").write_text("not a folder")
    assert main(["train", "audio", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"seqapps train: error: run folder {tmp_path / 'run.txt'} is a file, not a folder"
    assert main(["evaluate", str(tmp_path / "run.txt"), str(tmp_path / "data")]) == 2
    assert capsys.readouterr().err.strip().endswith("is a file, not a folder")
