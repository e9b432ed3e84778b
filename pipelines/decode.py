"""Audio decoding chosen by content: libsndfile where it is fastest, FFmpeg (PyAV) elsewhere.

A file's first bytes, not its name, say what it is: phones write AAC in MP4 and name it
``.mp3``, browsers write Opus in WebM. ``sniff_format`` reads the signature; WAV, FLAC,
AIFF and Ogg/Vorbis go to libsndfile (``soundfile``, fastest on them, see
benchmarks/README.md "Decoding"), everything else (AAC/M4A, MP3, Opus, WebM/MKV/MP4/MOV
audio tracks, WMA, AMR, ...) to FFmpeg through PyAV, whose wheel bundles FFmpeg's
libraries. A file libsndfile refuses is tried with FFmpeg before it is called bad.

Every failure is a ``BadMediaError`` whose reason says what happened: ``file not found``,
``dangling link``, ``not a file``, ``permission denied``, ``empty file``, ``unsupported
codec``, ``no audio stream``, ``truncated after N s``, ``no audio samples``,
``non-finite samples``. FFmpeg's own warnings are returned with the samples (and go to the
run's report) instead of being printed.

>>> decoded = decode_audio("clip.m4a")  # doctest: +SKIP
>>> decoded.data.shape, decoded.sample_rate, decoded.decoder  # doctest: +SKIP
((1, 44100), 44100, 'pyav')
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from seqapps.errors import BadMediaError, invalid_argument

__all__ = ["DECODERS", "DecodedAudio", "decode_audio", "sniff_format", "take_unattributed_warnings"]

DECODERS = ("auto", "soundfile", "pyav")
# Formats libsndfile reads faster than FFmpeg (measured: benchmarks/pipeline_audio.py).
# MP3 is not among them: libsndfile's mpg123 was slower here and prints its notes to the
# terminal; Ogg/Opus neither (libsndfile decodes it, but FFmpeg was faster).
_SOUNDFILE_FORMATS = {"wav", "flac", "aiff", "ogg-vorbis", "ogg-flac", "caf", "au", "w64"}
_SENTINEL_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}  # "unknown length" written by streaming encoders
# Decoded this much short of the duration a container declares means the file ends early.
# The slack covers encoder priming and padding (AAC: 1024-2048 samples, Opus: 312).
_TRUNCATION_SLACK_SECONDS = 0.2
_TRUNCATION_SLACK_FRACTION = 0.01


def truncation_slack(declared_seconds: float) -> float:
    """How far short of a declared duration a decode may end and still be whole (seconds)."""
    return max(_TRUNCATION_SLACK_SECONDS, _TRUNCATION_SLACK_FRACTION * declared_seconds)


def error_detail(error) -> str:
    """The first line of an FFmpeg (or OS) error, for a reason."""
    return str(getattr(error, "strerror", None) or error).splitlines()[0]

# Containers whose declared duration is read from an index or header (not estimated from
# the bit rate, as FFmpeg does for MP3 without a Xing header and for ADTS): only these are
# checked for truncation by duration.
_INDEXED_CONTAINERS = ("mov", "mp4", "matroska", "webm", "asf", "wav", "flac", "aiff", "caf", "w64")


@dataclass
class DecodedAudio:
    """Samples at the file's own rate.

    Attributes:
        data: float32 ``[channels, samples]``.
        sample_rate: native rate in Hz.
        decoder: ``"soundfile"`` or ``"pyav"``.
        warnings: messages the decoder logged (FFmpeg warnings), for the run's report.
    """

    data: np.ndarray
    sample_rate: int
    decoder: str
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the file itself


def check_file(path: str) -> None:
    """Raise BadMediaError for what needs no decoder to tell: missing, a dangling link, not
    a file, empty, unreadable (shared by the audio and video readers).

    >>> check_file("/no/such/file.wav")
    Traceback (most recent call last):
    ...
    seqapps.errors.BadMediaError: /no/such/file.wav: file not found
    """
    try:
        link = os.lstat(path)
    except FileNotFoundError:
        raise BadMediaError(path, "file not found") from None
    except PermissionError:
        raise BadMediaError(path, "permission denied (a parent folder cannot be searched)") from None
    try:
        info = os.stat(path)
    except FileNotFoundError:
        target = os.readlink(path) if stat.S_ISLNK(link.st_mode) else "?"
        raise BadMediaError(path, f"dangling link (points to {target}, which does not exist)") from None
    except OSError as error:  # ELOOP: a link to itself
        raise BadMediaError(path, f"unreadable link ({error.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        what = (
            "a folder" if stat.S_ISDIR(info.st_mode)
            else "a pipe" if stat.S_ISFIFO(info.st_mode)
            else "a socket" if stat.S_ISSOCK(info.st_mode)
            else "a device"
        )
        raise BadMediaError(path, f"not a file ({what})")
    if info.st_size == 0:
        raise BadMediaError(path, "empty file (0 bytes)")


def _read_head(path: str, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except PermissionError:
        raise BadMediaError(path, "permission denied") from None
    except OSError as error:
        raise BadMediaError(path, f"cannot be read ({error.strerror})") from None


def sniff_format(head: bytes) -> str:
    """The container (and for Ogg the codec) from a file's first bytes, or ``"unknown"``.

    >>> sniff_format(b"RIFF\\x24\\x00\\x00\\x00WAVEfmt ")
    'wav'
    >>> sniff_format(b"\\x00\\x00\\x00\\x20ftypM4A \\x00\\x00")
    'mp4'
    >>> sniff_format(b"ID3\\x04\\x00\\x00\\x00\\x00\\x00\\x00\\xff\\xfb\\x90\\x00")
    'mp3'
    """
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"RF64" or head[:4] == b"BW64":
        return "wav"
    if head[:4] == b"riff" and head[24:28] == b"wave":
        return "w64"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"caff":
        return "caf"
    if head[:4] == b".snd":
        return "au"
    if head[:4] == b"OggS":
        # The first page holds the codec's identification header.
        for signature, name in ((b"OpusHead", "ogg-opus"), (b"\x01vorbis", "ogg-vorbis"), (b"\x7fFLAC", "ogg-flac")):
            if signature in head[:512]:
                return name
        return "ogg"
    if head[4:8] == b"ftyp" or head[4:8] in (b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"  # also WebM
    if head[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"):
        return "asf"  # WMA / WMV
    if head[:5] == b"#!AMR":
        return "amr"
    offset = 0
    if head[:3] == b"ID3" and len(head) >= 10:
        # Skip the ID3v2 tag (its size is "syncsafe": 7 bits per byte).
        offset = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F))
        if offset + 2 > len(head):
            return "mp3"
    if len(head) >= offset + 2 and head[offset] == 0xFF:
        second = head[offset + 1]
        if second & 0xF6 == 0xF0:
            return "adts"  # raw AAC
        if second & 0xE0 == 0xE0 and (second >> 1) & 3:
            return "mp3"
    if offset:
        return "mp3"
    return "unknown"


def ogg_end_note(path: str) -> str | None:
    """A warning when an Ogg file does not end as a finished one does: its last page cut
    short, or without the end-of-stream flag every finished writer sets. Ogg declares no
    length, so this is the one sign of a cut recording. A warning, not a skip: the audio
    before the cut is valid, and a stream dump may lack the flag.

    >>> ogg_end_note("finished.ogg") is None  # doctest: +SKIP
    True
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 65536))  # pages are at most 65307 bytes
        tail = handle.read()
    at = tail.rfind(b"OggS\x00")  # the last page: capture pattern and stream version 0
    if at < 0 or len(tail) - at < 27:
        return "the last Ogg page is cut short: the recording may be truncated"
    segments = tail[at + 26]
    table = tail[at + 27:at + 27 + segments]
    if len(table) < segments or at + 27 + segments + sum(table) > len(tail):
        return "the last Ogg page is cut short: the recording may be truncated"
    if not tail[at + 5] & 0x04:
        return "the last Ogg page has no end-of-stream flag: the recording may be truncated"
    return None


# --------------------------------------------------------------------------- libsndfile


def _soundfile_truncation(extra_info: str, samplerate: int, frames: int) -> str | None:
    """libsndfile notes "data : DECLARED (should be ACTUAL)" when a WAV ends early."""
    for line in (extra_info or "").splitlines():
        words = line.replace(":", " ").replace("(", " ").replace(")", " ").split()
        if len(words) >= 5 and words[0] == "data" and words[2:4] == ["should", "be"]:
            try:
                declared, actual = int(words[1]), int(words[4])
            except ValueError:
                return None
            if declared not in _SENTINEL_SIZES and actual < declared:
                seconds = frames / samplerate if samplerate else 0.0
                return (f"truncated after {seconds:.2f} s: header declares {declared} data bytes, "
                        f"file holds {actual}")
    return None


def _read_soundfile(path: str) -> DecodedAudio:
    import soundfile

    with soundfile.SoundFile(path) as f:  # one open for the header notes and the samples
        data = f.read(dtype="float32", always_2d=True)
        native_rate, extra_info = f.samplerate, f.extra_info
    truncated = _soundfile_truncation(extra_info, native_rate, len(data))
    if truncated:
        raise BadMediaError(path, truncated)
    return DecodedAudio(np.ascontiguousarray(data.T), int(native_rate), "soundfile")


# --------------------------------------------------------------------------- FFmpeg (PyAV)

_SCALE = {"u8": 1 / 128, "s16": 1 / 32768, "s32": 1 / 2147483648, "s64": 1 / 9223372036854775808}
_LOGGING_LOCK = threading.Lock()
_UNATTRIBUTED: deque = deque(maxlen=1000)


class _Collector(logging.Handler):
    # FFmpeg messages logged outside a decode we watch (another thread, a library user's
    # own PyAV call): kept for the run's report instead of printed raw.
    def emit(self, record):
        _UNATTRIBUTED.append(f"{record.name}: {record.getMessage().strip()}")


def _enable_ffmpeg_warnings() -> None:
    """Route FFmpeg's warnings into Python once: captured per decode, never printed raw."""
    import av.logging

    with _LOGGING_LOCK:
        if getattr(_enable_ffmpeg_warnings, "done", False):
            return
        av.logging.set_level(av.logging.WARNING)
        # PyAV drops a message equal to the one before: the second decode of the same
        # truncated MP3 would lose "filesize and duration do not match" and pass as whole.
        av.logging.set_skip_repeated(False)
        logger = logging.getLogger("libav")
        logger.addHandler(_Collector())
        logger.propagate = False
        _enable_ffmpeg_warnings.done = True


def take_unattributed_warnings() -> list[str]:
    """FFmpeg warnings logged outside any watched decode since the last call (then cleared)."""
    taken = []
    while _UNATTRIBUTED:
        taken.append(_UNATTRIBUTED.popleft())
    return taken


def _to_float(frame) -> np.ndarray:
    """One decoded frame -> float32 [channels, samples], scaled as libsndfile does."""
    array = frame.to_ndarray()
    name = frame.format.name
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T
    base = name.rstrip("p")
    if base == "u8":
        return (array.astype(np.float32) - 128) * np.float32(_SCALE["u8"])
    if base in _SCALE:
        return array.astype(np.float32) * np.float32(_SCALE[base])
    return array.astype(np.float32, copy=False)


def _conform(samples: np.ndarray, *, channels: int, rate: int, target_rate: int) -> np.ndarray:
    """[c, n] at ``rate`` -> [channels, m] at ``target_rate`` (mix, copy, resample with soxr)."""
    if samples.shape[0] != channels:
        samples = np.repeat(samples.mean(axis=0, keepdims=True), channels, axis=0)
    if rate != target_rate:
        import librosa

        samples = librosa.resample(samples, orig_sr=rate, target_sr=target_rate, res_type="soxr_hq")
    return np.ascontiguousarray(samples, dtype=np.float32)


def _log_text(logs) -> list[str]:
    return [f"{name}: {message.strip()}" for level, name, message in logs if message.strip()]


def _open_error(path: str, kind: str, error, logs) -> BadMediaError:
    messages = " ".join(message for _, _, message in logs)
    if kind == "unknown":
        return BadMediaError(path, "not decodable as audio (neither libsndfile nor FFmpeg recognises the content)")
    if kind == "mp4" and "moov atom not found" in messages:
        return BadMediaError(path, "truncated: the MP4 index (moov atom) is missing, the recording was not finished")
    return BadMediaError(path, f"not decodable as audio ({kind} file: {error_detail(error)})")


def _unsupported(path: str, stream, logs) -> BadMediaError:
    codec = getattr(stream.codec_context, "name", None) if stream.codec_context is not None else None
    if codec and codec != "none":
        return BadMediaError(path, f"unsupported codec {codec} (no decoder in this FFmpeg build)")
    described = next(
        (m.split("(", 1)[1].split("):")[0] for _, _, m in logs if "Could not find codec parameters" in m and "(" in m),
        "",
    )
    # FFmpeg describes an unknown codec as "Audio: none (4[18][0][0] / 0x1234), ...": the
    # tag is what a user can look up.
    tag = re.search(r"/ (0x[0-9a-fA-F]+)\)", described)
    what = f"codec tag {tag.group(1)}" if tag else (described.strip() or "an unknown codec")
    return BadMediaError(path, f"unsupported codec ({what}: no decoder in FFmpeg or libsndfile)")


def _declared_seconds(container, stream, logs) -> float | None:
    names = container.format.name.split(",")
    # An MP3's Xing/Info header counts its frames; FFmpeg says so when the file is shorter.
    xing_mismatch = "mp3" in names and any("filesize and duration do not match" in m for _, _, m in logs)
    if not xing_mismatch and not any(name in names for name in _INDEXED_CONTAINERS):
        return None
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _read_pyav(path: str, kind: str) -> DecodedAudio:
    from pipelines.decode_pyav import PyavDecode  # the packet loop, shared with decode_stream

    with PyavDecode(path, kind) as run:
        chunks = list(run.chunks())
    data = np.concatenate(chunks, axis=1) if chunks else np.zeros((run.channels or 1, 0), np.float32)
    problem = run.problem()
    if problem:
        raise BadMediaError(path, problem)
    return DecodedAudio(data, run.rate, "pyav", run.notes())


# --------------------------------------------------------------------------- choice


def decode_audio(path: str | os.PathLike, *, decoder: str = "auto") -> DecodedAudio:
    """Decode one file at its own sample rate, choosing the decoder by the file's content.

    Args:
        path: any audio file, or a video file with an audio track.
        decoder: ``"auto"`` (libsndfile for WAV/FLAC/AIFF/Ogg-Vorbis, FFmpeg for the rest
            and for anything libsndfile refuses), ``"soundfile"`` or ``"pyav"`` (only
            that one; for measurements).

    Returns:
        ``DecodedAudio`` (float32 ``[channels, samples]``, native rate, decoder, warnings).

    Raises:
        BadMediaError: naming the file and what really happened.

    >>> decode_audio("recording.mp3").decoder  # AAC inside, named .mp3  # doctest: +SKIP
    'pyav'
    """
    if decoder not in DECODERS:
        raise invalid_argument("decoder", decoder, f"one of {DECODERS}")
    path = os.fspath(path)
    check_file(path)
    kind = sniff_format(_read_head(path))
    decoded = _decode_by_kind(path, kind, decoder)
    if kind.startswith("ogg") and (note := ogg_end_note(path)):
        decoded.warnings.append(note)
    return decoded


def _decode_by_kind(path: str, kind: str, decoder: str) -> DecodedAudio:
    if decoder == "pyav" or (decoder == "auto" and kind not in _SOUNDFILE_FORMATS):
        return _read_pyav(path, kind)
    try:
        return _read_soundfile(path)
    except BadMediaError:
        raise
    except Exception as sf_error:  # noqa: BLE001 - any libsndfile refusal: FFmpeg may still read it
        if decoder == "soundfile":
            reason = str(sf_error).splitlines()[0] if str(sf_error) else type(sf_error).__name__
            raise BadMediaError(path, f"not decodable as audio by libsndfile ({reason})") from None
        return _read_pyav(path, kind)
