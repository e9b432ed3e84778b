"""Decoding chosen by content (libsndfile or FFmpeg/PyAV) and the true reason for every bad file.

References: soundfile on the same PCM content (exact), the encoded waveform itself for lossy
codecs (correlation at the best lag, as codec delay shifts it), librosa.resample.
"""

from __future__ import annotations

import os
import struct
import tempfile

import librosa
import numpy as np
import pytest
import soundfile as sf

from pipelines.audio import decode_files, load_audio
from pipelines.decode import decode_audio, sniff_format
from pipelines.encode import write_audio, write_video
from pipelines.report import BadInputReport
from seqapps.errors import BadMediaError

SR = 16000


def _tone(n=SR, sr=SR, f=440.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    return (0.4 * np.sin(2 * np.pi * f * t) + 0.2 * np.sin(2 * np.pi * 3.1 * f * t)
            + 0.01 * rng.normal(size=n)).astype(np.float32)


def _best_correlation(decoded, original, max_lag=3000):
    n = min(len(decoded) - max_lag, len(original)) - 1
    return max(np.corrcoef(decoded[lag:lag + n], original[:n])[0, 1] for lag in range(0, max_lag, 4))


# --------------------------------------------------------------------------- formats users have


LOSSY = {
    # name: (file name, codec, container, encoder rate)
    "aac named .mp3": ("phone.mp3", "aac", "mp4", SR),
    "opus named .ogg": ("voice.ogg", "libopus", "ogg", SR),
    "m4a": ("clip.m4a", "aac", None, SR),
    "webm audio": ("browser.webm", "libopus", "webm", 48000),
    "mp3": ("clip.mp3", "libmp3lame", None, SR),
    "wma": ("clip.wma", "wmav2", "asf", SR),
    "amr": ("call.amr", "libopencore_amrnb", None, 8000),
    "audio track of an mp4 video": ("talk.mp4", "aac", "mp4", 22050),
}


@pytest.mark.parametrize("case", list(LOSSY))
def test_lossy_formats_decode_by_content(tmp_path, case):
    name, codec, container, rate = LOSSY[case]
    original = _tone(n=rate, sr=rate, f=300.0)
    path = tmp_path / name
    write_audio(path, original, sample_rate=rate, codec=codec, container=container,
                bit_rate=32000 if codec == "wmav2" else None)
    decoded = decode_audio(path)
    assert decoded.decoder == "pyav" and decoded.data.dtype == np.float32
    y = load_audio(path, sample_rate=SR)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - SR) <= 0.1 * SR  # codec priming and padding only
    reference = librosa.resample(original, orig_sr=rate, target_sr=SR) if rate != SR else original
    assert _best_correlation(y, reference) > (0.9 if codec == "libopencore_amrnb" else 0.97)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_pyav_equals_soundfile_on_the_same_pcm(tmp_path, fmt, subtype):
    if fmt == "flac" and subtype == "FLOAT":
        pytest.skip("FLAC holds integers only")
    stereo = np.stack([_tone(), _tone(f=900.0, seed=1)], axis=1)
    path = tmp_path / f"c.{fmt}"
    sf.write(path, stereo, SR, subtype=subtype)
    expected, _ = sf.read(path, dtype="float32", always_2d=True)
    by_ffmpeg = decode_audio(path, decoder="pyav")
    assert by_ffmpeg.decoder == "pyav" and by_ffmpeg.sample_rate == SR
    np.testing.assert_array_equal(by_ffmpeg.data, expected.T)
    assert decode_audio(path).decoder == "soundfile"  # the faster one is chosen


def test_pcm_in_a_video_container_equals_the_wav(tmp_path):
    sf.write(tmp_path / "pcm.wav", _tone(), SR, subtype="PCM_16")
    samples, _ = sf.read(tmp_path / "pcm.wav", dtype="int16")
    write_audio(tmp_path / "pcm.mkv", samples, sample_rate=SR, codec="pcm_s16le")  # the same 16-bit samples
    np.testing.assert_array_equal(load_audio(tmp_path / "pcm.mkv", sample_rate=SR),
                                  sf.read(tmp_path / "pcm.wav", dtype="float32")[0])
    np.testing.assert_array_equal(load_audio(tmp_path / "pcm.mkv", sample_rate=SR), samples / np.float32(32768))


def test_a_wav_named_mp3_is_read_exactly(tmp_path):
    sf.write(tmp_path / "really_wav.mp3", _tone(), SR, subtype="FLOAT", format="WAV")
    assert decode_audio(tmp_path / "really_wav.mp3").decoder == "soundfile"
    np.testing.assert_array_equal(load_audio(tmp_path / "really_wav.mp3", sample_rate=SR), _tone())


def test_resampling_of_ffmpeg_audio_matches_librosa(tmp_path):
    write_audio(tmp_path / "pcm48.mkv", _tone(n=48000, sr=48000), sample_rate=48000, codec="pcm_s16le")
    native = decode_audio(tmp_path / "pcm48.mkv").data[0]
    expected = librosa.resample(native, orig_sr=48000, target_sr=SR)  # soxr_hq, librosa's default
    np.testing.assert_allclose(load_audio(tmp_path / "pcm48.mkv", sample_rate=SR), expected, atol=1e-6)


@pytest.mark.parametrize("head,kind", [
    (b"RIFF\0\0\0\0WAVEfmt ", "wav"), (b"fLaC\0\0\0\x22", "flac"), (b"OggS" + b"\0" * 24 + b"OpusHead", "ogg-opus"),
    (b"OggS" + b"\0" * 24 + b"\x01vorbis", "ogg-vorbis"), (b"\0\0\0\x1cftypisom", "mp4"),
    (b"\x1a\x45\xdf\xa3\x9f", "matroska"), (b"#!AMR\n", "amr"), (b"\xff\xf1\x50\x80", "adts"),
    (b"\xff\xfb\x90\x64", "mp3"), (b"ID3\x03\0\0\0\0\0\x00\xff\xfb", "mp3"), (b"hello world", "unknown"),
])
def test_sniff_format_reads_signatures(head, kind):
    assert sniff_format(head) == kind


# --------------------------------------------------------------------------- honest reasons


def _reason(path, **kwargs) -> str:
    with pytest.raises(BadMediaError) as info:
        load_audio(path, sample_rate=SR, **kwargs)
    assert info.value.path == os.fspath(path)
    return info.value.reason


def test_video_without_audio_says_no_audio_stream(tmp_path):
    write_video(tmp_path / "silent.mp4", np.zeros((5, 32, 48, 3), np.uint8), fps=10)
    assert _reason(tmp_path / "silent.mp4") == "no audio stream (the file holds: video h264)"


def test_truncated_mp4_without_index_says_truncated(tmp_path):
    write_audio(tmp_path / "full.m4a", _tone(n=3 * SR), sample_rate=SR, codec="aac")
    data = (tmp_path / "full.m4a").read_bytes()  # the index (moov) is written last
    (tmp_path / "cut.m4a").write_bytes(data[: len(data) // 2])
    assert _reason(tmp_path / "cut.m4a").startswith("truncated: the MP4 index (moov atom) is missing")


def test_truncated_mp4_with_index_first_says_after_how_long(tmp_path):
    write_audio(tmp_path / "full.m4a", _tone(n=4 * SR), sample_rate=SR, codec="aac",
                options={"movflags": "+faststart"})
    data = (tmp_path / "full.m4a").read_bytes()
    (tmp_path / "cut.m4a").write_bytes(data[: len(data) // 2])
    reason = _reason(tmp_path / "cut.m4a")
    assert reason.startswith("truncated after ") and "declares 4.0" in reason
    seconds = float(reason.split()[2])
    assert 1.0 < seconds < 3.0  # about half of 4 s


def test_truncated_wav_says_after_how_long(tmp_path):
    sf.write(tmp_path / "full.wav", _tone(n=2 * SR), SR, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + SR])  # header + 0.5 s of 16-bit samples
    assert _reason(tmp_path / "cut.wav").startswith("truncated after 0.50 s: header declares 64000 data bytes")


def test_zero_samples(tmp_path):
    sf.write(tmp_path / "none.wav", np.zeros(0, np.float32), SR)
    assert _reason(tmp_path / "none.wav").startswith("no audio samples")


def test_nan_and_inf_samples_say_where(tmp_path):
    y = _tone()
    y[1600] = np.nan
    sf.write(tmp_path / "nan.wav", y, SR, subtype="FLOAT")
    assert _reason(tmp_path / "nan.wav") == "non-finite samples: NaN at 0.100 s"
    y = _tone()
    y[8000] = -np.inf
    sf.write(tmp_path / "inf.wav", y, SR, subtype="FLOAT")
    assert _reason(tmp_path / "inf.wav") == "non-finite samples: infinite value at 0.500 s"


def test_unknown_codec_says_unsupported_codec(tmp_path):
    sf.write(tmp_path / "odd.wav", _tone(), SR, subtype="PCM_16")
    data = bytearray((tmp_path / "odd.wav").read_bytes())
    tag = data.find(b"fmt ") + 8
    data[tag:tag + 2] = struct.pack("<H", 0x1234)  # a WAVE format tag nobody decodes
    (tmp_path / "odd.wav").write_bytes(bytes(data))
    reason = _reason(tmp_path / "odd.wav")
    assert reason.startswith("unsupported codec") and "0x1234" in reason


def test_not_audio_at_all(tmp_path):
    (tmp_path / "notes.m4a").write_text("shopping list\n" * 50)
    assert _reason(tmp_path / "notes.m4a").startswith("not decodable as audio")


def test_dangling_link_folder_and_pipe(tmp_path):
    os.symlink(tmp_path / "gone.wav", tmp_path / "link.wav")
    assert _reason(tmp_path / "link.wav") == f"dangling link (points to {tmp_path / 'gone.wav'}, which does not exist)"
    (tmp_path / "folder.wav").mkdir()
    assert _reason(tmp_path / "folder.wav") == "not a file (a folder)"
    os.mkfifo(tmp_path / "pipe.wav")
    assert _reason(tmp_path / "pipe.wav") == "not a file (a pipe)"  # and it does not hang
    assert _reason(tmp_path / "missing.wav") == "file not found"


def _reason_as_unprivileged_user(path) -> str:
    """Decode in a child process that gave up root: root reads every file regardless of mode."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.setgid(65534)
            os.setuid(65534)  # nobody
            try:
                load_audio(path, sample_rate=SR)
                message = "decoded"
            except BadMediaError as error:
                message = error.reason
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        message = f.read()
    os.waitpid(pid, 0)
    return message


def test_permission_denied(tmp_path):
    folder = tempfile.mkdtemp(prefix="perm-")  # /tmp: reachable by every user, unlike tmp_path
    try:
        path = os.path.join(folder, "secret.wav")
        sf.write(path, _tone(), SR)
        os.chmod(path, 0)
        os.chmod(folder, 0o755)
        if os.geteuid() == 0:
            reason = _reason_as_unprivileged_user(path)
        else:
            reason = _reason(path)
        assert reason == "permission denied"
    finally:
        os.chmod(path, 0o644)
        os.remove(path)
        os.rmdir(folder)


# --------------------------------------------------------------------------- many files, one report


def test_decode_files_reports_every_reason_and_keeps_ffmpeg_warnings(tmp_path, capfd):
    good_wav, good_amr = tmp_path / "good.wav", tmp_path / "good.amr"
    sf.write(good_wav, _tone(), SR)
    write_audio(good_amr, _tone(n=8000, sr=8000), sample_rate=8000, codec="libopencore_amrnb")
    write_video(tmp_path / "silent.mp4", np.zeros((3, 32, 48, 3), np.uint8), fps=10)
    (tmp_path / "empty.opus").write_bytes(b"")
    os.symlink(tmp_path / "nowhere.wav", tmp_path / "dangling.wav")
    paths = [good_wav, tmp_path / "silent.mp4", good_amr, tmp_path / "empty.opus", tmp_path / "dangling.wav"]
    report = BadInputReport()
    waves = decode_files(paths, sample_rate=SR, report=report, workers=2, show_progress=False)
    assert [w is not None for w in waves] == [True, False, True, False, False]
    assert report.counts_by_reason() == {"no audio stream": 1, "empty file": 1, "dangling link": 1}
    # FFmpeg notes that an AMR file has no duration field: kept with its file, not printed.
    assert any(w.get("path") == os.fspath(good_amr) and "Estimating duration" in w["message"]
               for w in report.warnings)
    assert "Estimating duration" not in capfd.readouterr().err
    summary = report.summary()
    assert summary.splitlines()[0] == "skipped by reason: 1 no audio stream, 1 empty file, 1 dangling link"
    assert "library warning" in summary


def test_truncated_mp3_is_named_and_a_corrupt_frame_is_skipped_not_fatal(tmp_path):
    original = _tone(n=2 * SR, f=300.0)
    write_audio(tmp_path / "full.mp3", original, sample_rate=SR, codec="libmp3lame")  # with a Xing header
    data = (tmp_path / "full.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])
    reason = _reason(tmp_path / "cut.mp3")
    assert reason.startswith("truncated after ") and reason.endswith("(the mp3 header declares 2.00 s)")
    assert 0.7 < float(reason.split()[2]) < 1.3
    middle = len(data) // 2
    noise = np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8).tobytes()
    (tmp_path / "scratched.mp3").write_bytes(data[:middle] + noise + data[middle + 600:])
    notes = []
    y = load_audio(tmp_path / "scratched.mp3", sample_rate=SR, notes=notes)
    assert 1.5 * SR < len(y) <= 2.1 * SR  # the file is kept, most of it (frames around the damage go)
    assert any("corrupt packet" in n or "Header missing" in n for n in notes)


def test_a_stream_that_turns_stereo_is_kept_in_its_first_layout(tmp_path):
    mono, left = _tone(f=300.0), _tone(f=300.0)
    write_audio(tmp_path / "mono.aac", mono, sample_rate=SR, codec="aac", container="adts")
    write_audio(tmp_path / "stereo.aac", np.stack([left, -left]), sample_rate=SR, codec="aac", container="adts")
    # Raw AAC (ADTS) frames each carry their layout: one file, mono then stereo, as broadcasts switch.
    (tmp_path / "switch.aac").write_bytes((tmp_path / "mono.aac").read_bytes() + (tmp_path / "stereo.aac").read_bytes())
    notes = []
    y = load_audio(tmp_path / "switch.aac", sample_rate=SR, mono=False, notes=notes)
    assert y.shape[0] == 1 and 1.9 * SR < y.shape[1] < 2.4 * SR
    assert any("stream changes from 1 channels at 16000 Hz to 2" in n for n in notes)
    tail = y[0, -SR // 2:]
    assert np.abs(tail).max() < 0.05  # left and -left mixed: the stereo half cancels, as librosa.to_mono would


@pytest.mark.parametrize("codec", ["vorbis", "opus"])
def test_a_cut_ogg_file_keeps_its_audio_with_a_warning(tmp_path, codec):
    """Ogg declares no length: a cut recording is found by its last page (cut short, no
    end-of-stream flag). The audio before the cut is kept, and the warning says why."""
    from pipelines.decode import ogg_end_note
    from pipelines.decode_stream import stream_audio

    rate = SR if codec == "vorbis" else 48000
    x = (0.1 * np.random.default_rng(0).standard_normal(rate * 20)).astype(np.float32)
    whole = tmp_path / f"{codec}.ogg"
    if codec == "vorbis":
        sf.write(whole, x, rate, format="OGG", subtype="VORBIS")
    else:
        write_audio(whole, x[np.newaxis], sample_rate=rate, codec="libopus", container="ogg")
    data = whole.read_bytes()
    cut = tmp_path / f"{codec}_cut.ogg"
    cut.write_bytes(data[:int(len(data) * 0.6)])
    assert ogg_end_note(str(whole)) is None and not decode_audio(whole).warnings
    decoded = decode_audio(cut)
    assert decoded.warnings == ["the last Ogg page is cut short: the recording may be truncated"]
    assert 8 < decoded.data.shape[1] / decoded.sample_rate < 14  # what lies before the cut
    notes = []
    blocks = list(stream_audio(cut, sample_rate=SR, notes=notes))
    assert notes[-1] == decoded.warnings[0] and sum(b.shape[-1] for b in blocks) > 8 * SR
    # a page cut exactly at its end: complete, but without the end-of-stream flag
    last = data.rfind(b"OggS\x00")
    unflagged = bytearray(data)
    unflagged[last + 5] &= ~0x04 & 0xFF
    (tmp_path / "unflagged.ogg").write_bytes(bytes(unflagged))
    assert ogg_end_note(str(tmp_path / "unflagged.ogg")).startswith("the last Ogg page has no end-of-stream flag")


def test_a_raw_aac_stream_cut_inside_a_packet_says_it_may_be_truncated(tmp_path):
    """Raw AAC (ADTS) declares no length: a cut shows only as a last packet that does not
    decode. The audio before it is kept, with a warning; a whole stream gets none."""
    from pipelines.decode_stream import stream_audio

    x = (0.1 * np.random.default_rng(0).standard_normal((1, SR * 5))).astype(np.float32)
    write_audio(tmp_path / "whole.aac", x, sample_rate=SR, codec="aac", container="adts")
    data = (tmp_path / "whole.aac").read_bytes()
    (tmp_path / "cut.aac").write_bytes(data[:int(len(data) * 0.6) + 7])  # inside a frame
    assert not any("truncated" in w for w in decode_audio(tmp_path / "whole.aac").warnings)
    cut = decode_audio(tmp_path / "cut.aac")
    seconds = cut.data.shape[1] / cut.sample_rate
    assert 2.0 < seconds < 4.0
    assert cut.warnings[-1] == f"aac: the last packet does not decode: the recording may be truncated after {seconds:.2f} s"
    notes = []
    list(stream_audio(tmp_path / "cut.aac", sample_rate=SR, notes=notes))
    assert notes[-1] == cut.warnings[-1]
