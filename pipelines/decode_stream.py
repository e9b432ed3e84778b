"""Long recordings read block by block in constant memory, the decoder chosen by content.

The streaming twin of ``pipelines.decode.decode_audio``: the same signature sniffing
(libsndfile for WAV/FLAC/AIFF/Ogg-Vorbis, FFmpeg through PyAV for AAC/M4A, MP3, Opus,
WebM, video tracks, ...), the same true reasons (``dangling link``, ``not a file``,
``permission denied``, ``no audio stream``, ``unsupported codec NAME``, ``truncated
after N s``, ``non-finite samples``), and FFmpeg's warnings returned in ``notes`` rather
than printed. Samples are mixed to mono (the channel mean, as ``librosa.to_mono``) and
resampled by one ``soxr.ResampleStream`` ("HQ") across blocks: the same samples as
``pipelines.audio.load_audio`` (``librosa.resample(res_type="soxr_hq")``) on the whole
file, bit for bit (tests/pipelines/test_decode_stream.py), whatever the block size.

>>> blocks = stream_audio("an hour.m4a", sample_rate=16000, block_seconds=2.0)  # doctest: +SKIP
>>> next(blocks).shape  # doctest: +SKIP
(32000,)
>>> native_sample_rate("phone call.mp3")  # AAC inside  # doctest: +SKIP
8000
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import numpy as np

from pipelines.decode import (
    _SOUNDFILE_FORMATS,
    _enable_ffmpeg_warnings,
    _open_error,
    _read_head,
    _soundfile_truncation,
    check_file,
    ogg_end_note,
    sniff_format,
    truncation_slack,
)
from pipelines.decode_pyav import PyavDecode, _audio_stream  # the packet loop decode_audio runs
from seqapps.errors import BadMediaError, invalid_argument

__all__ = ["stream_audio", "native_sample_rate"]


class _MonoBlocks:
    """Native-rate chunks [channels, n] in, mono float32 blocks at the target rate out."""

    def __init__(self, path: str, *, rate: int, target_rate: int, block: int):
        self.path, self.rate, self.block = path, int(rate), int(block)
        self.read = 0  # native samples so far: the time of a bad sample, the decoded length
        self._pending: list[np.ndarray] = []
        self._pending_count = 0
        self._resampler = None
        if self.rate != target_rate:
            import soxr

            self._resampler = soxr.ResampleStream(self.rate, int(target_rate), 1, dtype="float32", quality="HQ")

    def push(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        finite = np.isfinite(samples)
        if not finite.all():
            first = int(np.argmin(finite.all(axis=0)))
            what = "NaN" if np.isnan(samples[:, first]).any() else "infinite value"
            raise BadMediaError(self.path, f"non-finite samples: {what} at {(self.read + first) / self.rate:.3f} s")
        mono = samples.mean(axis=0, dtype=np.float32) if samples.shape[0] > 1 else samples[0]
        self.read += len(mono)
        self._pending.append(mono)
        self._pending_count += len(mono)
        if self._pending_count >= self.block:
            pending = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
            cut = len(pending) - len(pending) % self.block
            self._pending = [pending[cut:]] if cut < len(pending) else []
            self._pending_count = len(pending) - cut
            for start in range(0, cut, self.block):
                yield from self._out(pending[start:start + self.block])

    def finish(self) -> Iterator[np.ndarray]:
        if self._pending:
            yield from self._out(np.concatenate(self._pending))
            self._pending, self._pending_count = [], 0
        if self._resampler is not None:
            yield from self._out(np.zeros(0, np.float32), last=True)

    def _out(self, mono: np.ndarray, last: bool = False) -> Iterator[np.ndarray]:
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono, last=last)
        if len(mono):
            yield np.ascontiguousarray(mono, dtype=np.float32)


def stream_audio(path: str | os.PathLike, *, sample_rate: int, block_seconds: float = 2.0,
                 notes: list[str] | None = None) -> Iterator[np.ndarray]:
    """Mono float32 blocks of about ``block_seconds`` at ``sample_rate``, in constant memory.

    Args:
        path: any audio file, or a video file with an audio track.
        sample_rate: output rate in Hz (soxr "HQ" from the file's own rate).
        block_seconds: audio per block, counted at the file's rate (the last one is shorter).
        notes: when given, FFmpeg's warnings for this file are appended to it at the end.

    Raises:
        BadMediaError: naming the file and the true reason; checks of the file itself,
            its format and codec come before the first block. A file that ends before its
            declared length raises ``truncated after N s`` after its last block.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise invalid_argument("sample_rate", sample_rate, "a positive integer")
    if not block_seconds > 0:
        raise invalid_argument("block_seconds", block_seconds, "a positive number")
    path = os.fspath(path)
    check_file(path)
    kind = sniff_format(_read_head(path))
    opened = _open_soundfile(path) if kind in _SOUNDFILE_FORMATS else None
    if opened is not None:  # else libsndfile refuses it: FFmpeg may read it (as decode_audio)
        yield from _soundfile_blocks(path, opened, sample_rate=sample_rate, block_seconds=block_seconds)
    else:
        yield from _pyav_blocks(path, kind, sample_rate=sample_rate, block_seconds=block_seconds, notes=notes)
    if notes is not None and kind.startswith("ogg") and (note := ogg_end_note(path)):
        notes.append(note)


# --------------------------------------------------------------------------- libsndfile


def _open_soundfile(path: str):
    import soundfile

    try:
        return soundfile.SoundFile(path)
    except Exception:  # noqa: BLE001 - any libsndfile refusal: FFmpeg may still read it
        return None


def _soundfile_blocks(path: str, f, *, sample_rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    import soundfile

    with f:
        truncated = _soundfile_truncation(f.extra_info, f.samplerate, f.frames)
        if truncated:
            raise BadMediaError(path, truncated)
        rate, declared = int(f.samplerate), int(f.frames)
        blocks = _MonoBlocks(path, rate=rate, target_rate=sample_rate, block=max(1, round(block_seconds * rate)))
        while True:
            try:
                data = f.read(blocks.block, dtype="float32", always_2d=True)
            except (RuntimeError, soundfile.LibsndfileError) as error:
                # A FLAC cut short: libsndfile loses sync where the bytes end.
                if declared > 0 and blocks.read < declared - truncation_slack(declared / rate) * rate:
                    raise BadMediaError(path, f"truncated after {blocks.read / rate:.2f} s (the {_kind_name(f)} "
                                              f"header declares {declared / rate:.2f} s)") from None
                raise BadMediaError(path, f"corrupt after {blocks.read / rate:.2f} s "
                                          f"(libsndfile: {str(error).strip()})") from None
            if not len(data):
                break
            yield from blocks.push(data.T)
        yield from blocks.finish()
    if declared > 0 and blocks.read < declared - truncation_slack(declared / rate) * rate:
        raise BadMediaError(path, f"truncated after {blocks.read / rate:.2f} s (the {_kind_name(f)} header "
                                  f"declares {declared / rate:.2f} s)")


def _kind_name(f) -> str:
    return str(f.format).lower()


# --------------------------------------------------------------------------- FFmpeg (PyAV)


def _pyav_blocks(path: str, kind: str, *, sample_rate: int, block_seconds: float,
                 notes: list[str] | None) -> Iterator[np.ndarray]:
    blocks = None
    with PyavDecode(path, kind) as run:
        for samples in run.chunks():
            if blocks is None:
                blocks = _MonoBlocks(path, rate=run.rate, target_rate=sample_rate,
                                     block=max(1, round(block_seconds * run.rate)))
            yield from blocks.push(samples)
        if blocks is not None:
            yield from blocks.finish()
    if notes is not None:
        notes.extend(run.notes())
    problem = run.problem()
    if problem:
        raise BadMediaError(path, problem)


# --------------------------------------------------------------------------- header only


def native_sample_rate(path: str | os.PathLike) -> int:
    """A file's recorded sample rate from its header (no decoding), the reader chosen by content.

    libsndfile for its formats; FFmpeg for the rest, with its messages captured (never
    printed). For Opus, which always decodes at 48 kHz, the rate the encoder was given
    (the ``OpusHead`` "input sample rate") when the header has one.

    Raises:
        BadMediaError: the same reasons as ``decode_audio`` for what a header shows.
    """
    path = os.fspath(path)
    check_file(path)
    kind = sniff_format(_read_head(path))
    if kind in _SOUNDFILE_FORMATS:
        import soundfile

        try:
            return int(soundfile.info(path).samplerate)
        except Exception:  # noqa: BLE001 - libsndfile refuses it: FFmpeg may read it
            pass
    import av
    import av.logging

    _enable_ffmpeg_warnings()
    with av.logging.Capture(local=True) as logs:
        try:
            container = av.open(path, metadata_errors="ignore")
        except av.FFmpegError as error:
            raise _open_error(path, kind, error, logs) from None
        with container:
            stream = _audio_stream(path, container, logs)
            context = stream.codec_context
            rate = int(context.sample_rate or stream.rate or 0)
            extradata = context.extradata or b""
            if context.name == "opus" and extradata[:8] == b"OpusHead" and len(extradata) >= 16:
                rate = struct.unpack("<I", extradata[12:16])[0] or rate
    if rate <= 0:
        raise BadMediaError(path, "no sample rate in the header")
    return rate
