"""fit_band_to_files reads each file's rate by its content, without library noise on the terminal.

References: the rates the files were written at (PyAV encoders, soundfile).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from pipelines.encode import write_audio
from pipelines.sources import from_directory
from seqapps.runs.settings import resolve_settings
from seqapps.runs.speech import fit_band_to_files


def _tone(rate, seconds=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def _source(folder):
    return from_directory(folder, extensions=(".mp3", ".ogg", ".wav", ".m4a", ".webm"))


def test_phone_aac_and_webm_at_8_khz_fit_the_band(tmp_path, capfd):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_audio(tmp_path / "a" / "call.mp3", _tone(8000), sample_rate=8000, codec="aac", container="mp4")
    write_audio(tmp_path / "a" / "memo.m4a", _tone(8000), sample_rate=8000, codec="aac")
    write_audio(tmp_path / "b" / "browser.webm", _tone(8000), sample_rate=8000, codec="libopus", container="webm")
    capfd.readouterr()
    settings = resolve_settings("audio")  # sample_rate 16000
    with pytest.warns(UserWarning, match="recorded at 8000 Hz"):
        # libsndfile reads none of these headers (AAC in MP4 named .mp3, M4A, WebM), and
        # FFmpeg decodes Opus at 48 kHz: the rate is the one the encoder was given.
        assert fit_band_to_files(settings, _source(tmp_path)) == 4000.0
    assert settings["data"]["fmax"] == 4000.0
    err = capfd.readouterr().err
    assert "Note: Illegal" not in err and "mpg123" not in err and "resync" not in err


def test_one_file_at_the_model_rate_keeps_the_band(tmp_path, capfd):
    (tmp_path / "a").mkdir()
    write_audio(tmp_path / "a" / "call.mp3", _tone(8000), sample_rate=8000, codec="aac", container="mp4")
    write_audio(tmp_path / "a" / "music.mp3", _tone(16000), sample_rate=16000, codec="libmp3lame")  # a real MP3
    sf.write(tmp_path / "a" / "cut.wav", _tone(8000), 8000)
    (tmp_path / "a" / "broken.mp3").write_bytes(b"\xff\xfb\x90\x00" + bytes(300))  # skipped, reported by decoding
    capfd.readouterr()
    settings = resolve_settings("audio")
    assert fit_band_to_files(settings, _source(tmp_path)) is None  # the real MP3 is at 16 kHz
    assert settings["data"].get("fmax") is None
    err = capfd.readouterr().err
    assert "Note: Illegal" not in err and "mpg123" not in err
