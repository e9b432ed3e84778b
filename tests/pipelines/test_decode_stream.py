"""Block-by-block decoding (pipelines.decode_stream): the samples and reasons of whole-file decoding.

References: ``pipelines.audio.load_audio`` on the whole file (what training decodes: its
decoders are checked against soundfile and librosa in test_decode.py), soundfile headers,
the rates the files were written at; ``tracemalloc`` for memory.
"""

from __future__ import annotations

import os
import struct
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from pipelines.audio import load_audio
from pipelines.decode import decode_audio
from pipelines.decode_stream import native_sample_rate, stream_audio
from pipelines.encode import write_audio, write_video
from seqapps.errors import BadMediaError

SR = 16000


def _tone(n, sr, f=300.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    return (0.4 * np.sin(2 * np.pi * f * t) + 0.01 * rng.normal(size=n)).astype(np.float32)


def _streamed(path, *, block_seconds, sample_rate=SR, notes=None):
    blocks = list(stream_audio(path, sample_rate=sample_rate, block_seconds=block_seconds, notes=notes))
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


FILES = {
    # name: (file name, codec or None for soundfile, container, rate, channels)
    "aac named .mp3": ("phone.mp3", "aac", "mp4", 8000, 1),
    "opus named .ogg": ("voice.ogg", "libopus", "ogg", SR, 1),
    "webm opus stereo": ("browser.webm", "libopus", "webm", 48000, 2),
    "mp3": ("clip.mp3", "libmp3lame", None, 22050, 1),
    "m4a": ("memo.m4a", "aac", None, 44100, 2),
    "audio track of an mp4 video": ("talk.mp4", "aac", "mp4", 22050, 1),
    "wav 48 kHz stereo": ("studio.wav", None, "WAV", 48000, 2),
    "flac 44.1 kHz": ("album.flac", None, "FLAC", 44100, 1),
    "wav at the model rate": ("plain.wav", None, "WAV", SR, 1),
}


def _write(tmp_path, case, seconds=3.0):
    name, codec, container, rate, channels = FILES[case]
    n = int(seconds * rate)
    waveform = np.stack([_tone(n, rate, f=300.0 * (c + 1), seed=c) for c in range(channels)])
    path = tmp_path / name
    if codec is None:
        sf.write(path, waveform.T, rate, format=container, subtype="PCM_16")
    else:
        write_audio(path, waveform, sample_rate=rate, codec=codec, container=container)
    return path, rate


@pytest.mark.parametrize("case", list(FILES))
def test_blocks_are_the_samples_training_decodes(tmp_path, case):
    path, _ = _write(tmp_path, case)
    whole = load_audio(path, sample_rate=SR)
    for block_seconds in (0.013, 0.5, 100.0):  # smaller than a codec frame, a few frames, the whole file
        # soxr's stream and its one-shot call are the same filter: equal, not only close.
        np.testing.assert_array_equal(_streamed(path, block_seconds=block_seconds), whole)


def test_blocks_have_the_asked_length(tmp_path):
    path, rate = _write(tmp_path, "m4a")
    lengths = [len(b) for b in stream_audio(path, sample_rate=rate, block_seconds=0.5)]
    assert set(lengths[:-1]) == {rate // 2}  # at the file's own rate: exact blocks
    assert 0 < lengths[-1] <= rate // 2


def test_a_long_file_stays_in_constant_memory(tmp_path):
    # 3 min of 48 kHz AAC: 35 MB as float32 held whole (load_audio peaks at 80 MB here);
    # measured 10 min: 1.4 MB streamed, 265 MB whole.
    path = tmp_path / "long.m4a"
    write_audio(path, np.zeros(48000 * 180, np.float32), sample_rate=48000, codec="aac", bit_rate=32000)
    tracemalloc.start()
    try:
        total = 0
        for block in stream_audio(path, sample_rate=SR, block_seconds=2.0):
            total += len(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(total - 180 * SR) < 0.1 * SR  # AAC priming and padding
    assert peak < 5_000_000  # a few 2-s blocks (each 384 kB at 48 kHz), not the 11.5 MB of the output


# --------------------------------------------------------------------------- the same true reasons


def _stream_reason(path, **kwargs) -> str:
    with pytest.raises(BadMediaError) as info:
        _streamed(path, block_seconds=0.5, **kwargs)
    assert info.value.path == os.fspath(path)
    return info.value.reason


def _whole_reason(path) -> str:
    with pytest.raises(BadMediaError) as info:
        load_audio(path, sample_rate=SR)
    return info.value.reason


def _bad_files(tmp_path):
    os.symlink(tmp_path / "gone.wav", tmp_path / "dangling.wav")
    (tmp_path / "folder.wav").mkdir()
    (tmp_path / "empty.mp3").write_bytes(b"")
    write_video(tmp_path / "video_only.mp4", np.zeros((5, 32, 48, 3), np.uint8), fps=10)
    (tmp_path / "notes.m4a").write_text("shopping list\n" * 50)
    write_audio(tmp_path / "full.m4a", _tone(3 * SR, SR), sample_rate=SR, codec="aac")
    data = (tmp_path / "full.m4a").read_bytes()  # the index (moov) comes last
    (tmp_path / "no_index.m4a").write_bytes(data[: len(data) // 2])
    write_audio(tmp_path / "fast.m4a", _tone(4 * SR, SR), sample_rate=SR, codec="aac",
                options={"movflags": "+faststart"})
    data = (tmp_path / "fast.m4a").read_bytes()
    (tmp_path / "cut.m4a").write_bytes(data[: len(data) // 2])
    write_audio(tmp_path / "full.mp3", _tone(2 * SR, SR), sample_rate=SR, codec="libmp3lame")
    data = (tmp_path / "full.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])
    sf.write(tmp_path / "full.wav", _tone(2 * SR, SR), SR, subtype="PCM_16")
    (tmp_path / "cut.wav").write_bytes((tmp_path / "full.wav").read_bytes()[: 44 + SR])
    y = _tone(SR, SR)
    y[1600] = np.nan
    sf.write(tmp_path / "nan.wav", y, SR, subtype="FLOAT")
    sf.write(tmp_path / "odd.wav", _tone(SR, SR), SR, subtype="PCM_16")
    odd = bytearray((tmp_path / "odd.wav").read_bytes())
    tag = odd.find(b"fmt ") + 8
    odd[tag:tag + 2] = struct.pack("<H", 0x1234)  # a WAVE format tag nobody decodes
    (tmp_path / "odd.wav").write_bytes(bytes(odd))
    return ["dangling.wav", "folder.wav", "empty.mp3", "video_only.mp4", "notes.m4a", "no_index.m4a", "cut.m4a",
            "cut.mp3", "cut.wav", "nan.wav", "odd.wav"]


def test_every_bad_file_gets_the_reason_whole_decoding_gives(tmp_path):
    names = _bad_files(tmp_path)
    streamed = {name: _stream_reason(tmp_path / name) for name in names}  # first: no log left from a decode
    whole = {name: _whole_reason(tmp_path / name) for name in names}
    assert streamed == whole
    assert streamed["dangling.wav"] == f"dangling link (points to {tmp_path / 'gone.wav'}, which does not exist)"
    assert streamed["folder.wav"] == "not a file (a folder)"
    assert streamed["empty.mp3"] == "empty file (0 bytes)"
    assert streamed["video_only.mp4"] == "no audio stream (the file holds: video h264)"
    assert streamed["no_index.m4a"].startswith("truncated: the MP4 index (moov atom) is missing")
    assert streamed["cut.m4a"].startswith("truncated after ") and "declares 4.0" in streamed["cut.m4a"]
    assert streamed["cut.mp3"].endswith("(the mp3 header declares 2.00 s)")
    assert streamed["cut.wav"].startswith("truncated after 0.50 s: header declares 64000 data bytes")
    assert streamed["nan.wav"] == "non-finite samples: NaN at 0.100 s"
    assert streamed["odd.wav"].startswith("unsupported codec") and "0x1234" in streamed["odd.wav"]
    assert streamed["notes.m4a"].startswith("not decodable as audio")


def test_a_truncated_mp3_decoded_twice_is_truncated_twice(tmp_path):
    # PyAV drops a log line equal to the previous one unless told not to: the second
    # decode lost the "duration does not match" note and took the cut file as whole.
    write_audio(tmp_path / "full.mp3", _tone(2 * SR, SR), sample_rate=SR, codec="libmp3lame")
    data = (tmp_path / "full.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])
    reasons = [_whole_reason(tmp_path / "cut.mp3"), _whole_reason(tmp_path / "cut.mp3"),
               _stream_reason(tmp_path / "cut.mp3"), _stream_reason(tmp_path / "cut.mp3")]
    assert len(set(reasons)) == 1 and reasons[0].startswith("truncated after ")


def test_a_cut_flac_says_truncated(tmp_path):
    sf.write(tmp_path / "full.flac", _tone(3 * SR, SR), SR)
    data = (tmp_path / "full.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    reason = _stream_reason(tmp_path / "cut.flac")
    # libsndfile stops where it loses sync; the whole-file decoder hands the rest to FFmpeg,
    # which gets a little further: the same words, a slightly different time.
    assert reason.startswith("truncated after ") and reason.endswith("(the flac header declares 3.00 s)")
    assert _whole_reason(tmp_path / "cut.flac").endswith("(the flac header declares 3.00 s)")
    assert 0.8 < float(reason.split()[2]) < 1.6


def test_ffmpeg_warnings_go_to_notes_not_to_the_terminal(tmp_path, capfd):
    write_audio(tmp_path / "full.mp3", _tone(2 * SR, SR), sample_rate=SR, codec="libmp3lame")
    data = (tmp_path / "full.mp3").read_bytes()
    middle = len(data) // 2
    noise = np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8).tobytes()
    (tmp_path / "scratched.mp3").write_bytes(data[:middle] + noise + data[middle + 600:])
    notes, whole_notes = [], []
    streamed = _streamed(tmp_path / "scratched.mp3", block_seconds=0.5, notes=notes)
    np.testing.assert_array_equal(streamed, load_audio(tmp_path / "scratched.mp3", sample_rate=SR, notes=whole_notes))
    assert notes and notes == whole_notes
    err = capfd.readouterr().err
    assert not any(note.split(": ", 1)[1] in err for note in notes if ": " in note)
    assert "Header missing" not in err and "Illegal" not in err


def test_arguments_are_checked(tmp_path):
    sf.write(tmp_path / "a.wav", _tone(SR, SR), SR)
    with pytest.raises(ValueError, match="block_seconds"):
        next(stream_audio(tmp_path / "a.wav", sample_rate=SR, block_seconds=0))
    with pytest.raises(ValueError, match="sample_rate"):
        next(stream_audio(tmp_path / "a.wav", sample_rate=16000.5))


# --------------------------------------------------------------------------- header only


def test_native_sample_rate_by_content_without_libmpg123_noise(tmp_path, capfd):
    x = _tone(8000, 8000)
    write_audio(tmp_path / "call.mp3", x, sample_rate=8000, codec="aac", container="mp4")  # AAC named .mp3
    write_audio(tmp_path / "real.mp3", x, sample_rate=8000, codec="libmp3lame")
    write_audio(tmp_path / "voice.ogg", x, sample_rate=8000, codec="libopus", container="ogg")
    write_audio(tmp_path / "browser.webm", x, sample_rate=8000, codec="libopus",
                container="webm")
    sf.write(tmp_path / "a.wav", _tone(22050, 22050), 22050)
    sf.write(tmp_path / "wav_named.mp3", _tone(11025, 11025), 11025, format="WAV")
    capfd.readouterr()
    rates = {name: native_sample_rate(tmp_path / name)
             for name in ["call.mp3", "real.mp3", "voice.ogg", "browser.webm", "a.wav", "wav_named.mp3"]}
    # Opus always decodes at 48 kHz; its header keeps the rate the encoder was given.
    assert rates == {"call.mp3": 8000, "real.mp3": 8000, "voice.ogg": 8000, "browser.webm": 8000,
                     "a.wav": 22050, "wav_named.mp3": 11025}
    assert decode_audio(tmp_path / "voice.ogg").sample_rate == 48000
    assert sf.info(tmp_path / "wav_named.mp3").samplerate == 11025
    assert capfd.readouterr().err == ""
    os.symlink(tmp_path / "gone.mp3", tmp_path / "dangling.mp3")
    with pytest.raises(BadMediaError, match="dangling link"):
        native_sample_rate(tmp_path / "dangling.mp3")
    write_video(tmp_path / "v.mp4", np.zeros((3, 32, 48, 3), np.uint8), fps=10)
    with pytest.raises(BadMediaError, match="no audio stream"):
        native_sample_rate(tmp_path / "v.mp4")
