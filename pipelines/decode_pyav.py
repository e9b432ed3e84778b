"""FFmpeg's packet loop (PyAV), shared by whole-file and streamed decoding.

``PyavDecode`` opens a file, finds its audio stream and yields its samples chunk by chunk,
packet by packet as the ``ffmpeg`` tool does: a corrupt packet is skipped and counted, not
the end of the file; a stream that changes layout or rate midway is kept, converted to
its first frame's. After the last chunk it knows what a caller reports: the decoded
length, the length the container declares, FFmpeg's warnings and any truncation.
``pipelines.decode.decode_audio`` gathers the chunks, ``pipelines.decode_stream`` resamples
them block by block: the same reasons, the same samples.

>>> with PyavDecode("phone call.m4a", "mp4") as run:  # doctest: +SKIP
...     samples = sum(chunk.shape[1] for chunk in run.chunks())
>>> run.rate, run.problem()  # doctest: +SKIP
(8000, None)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pipelines import decode as _decode
from seqapps.errors import BadMediaError

__all__ = ["PyavDecode"]


class PyavDecode:
    """One file through FFmpeg (see module doc); a context manager.

    Args:
        path: the file (already checked: it exists and can be read).
        kind: what ``sniff_format`` called it, for the reasons.

    Raises (on entry or while iterating ``chunks``): BadMediaError for a file FFmpeg
    cannot open, without an audio stream, with an unsupported codec, or with no packet
    that decodes.
    """

    def __init__(self, path: str, kind: str):
        self.path, self.kind = path, kind
        self.rate = self.channels = None
        self.samples = 0  # decoded, at `rate`
        self.corrupt = 0
        self.declared: float | None = None
        self.stop_error = None
        self.last_packet_failed = False  # a stream cut inside its last packet
        self._changed: list[str] = []

    def __enter__(self):
        import av
        import av.logging

        _decode._enable_ffmpeg_warnings()
        self._capture = av.logging.Capture(local=True)
        self.logs = self._capture.__enter__()
        try:
            try:
                self.container = av.open(self.path, metadata_errors="ignore")
            except av.FFmpegError as error:
                raise _decode._open_error(self.path, self.kind, error, self.logs) from None
            self.stream = _audio_stream(self.path, self.container, self.logs)
        except BaseException:
            self._capture.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.container.close()
        finally:
            self._capture.__exit__(*exc)
        return False

    @property
    def codec(self) -> str:
        return self.stream.codec_context.name

    def chunks(self) -> Iterator[np.ndarray]:
        """float32 [channels, n] chunks at ``rate`` (the first frame's layout and rate)."""
        import av

        decoder = self.stream.codec_context
        try:
            for packet in self.container.demux(self.stream):
                try:
                    frames = decoder.decode(packet)
                except av.error.DecoderNotFoundError:
                    raise _decode._unsupported(self.path, self.stream, self.logs) from None
                except av.FFmpegError:
                    self.corrupt += 1
                    self.last_packet_failed = True
                    continue
                if packet.size:  # not the flushing packet the demuxer ends with
                    self.last_packet_failed = False
                for frame in frames:
                    yield self._conformed(frame)
        except av.FFmpegError as error:  # the demuxer: the file ends inside a packet, say
            self.stop_error = error
        if not self.samples and (self.corrupt or self.stop_error is not None):
            detail = _decode.error_detail(self.stop_error or "every packet is corrupt")
            raise BadMediaError(self.path, f"not decodable as audio ({decoder.name}: {detail})")
        self.declared = _decode._declared_seconds(self.container, self.stream, self.logs)
        self.rate = int(self.rate or self.stream.rate or 0)

    def _conformed(self, frame) -> np.ndarray:
        samples = _decode._to_float(frame)
        if self.rate is None:
            self.rate, self.channels = frame.sample_rate, samples.shape[0]
        elif (frame.sample_rate, samples.shape[0]) != (self.rate, self.channels):
            # Broadcasts and some phones switch layout or rate mid-stream: keep the file.
            if not self._changed:
                self._changed.append(f"{self.codec}: stream changes from {self.channels} channels at {self.rate} Hz "
                                     f"to {samples.shape[0]} at {frame.sample_rate} Hz after "
                                     f"{self.samples / self.rate:.2f} s; converted to the first")
            samples = _decode._conform(samples, channels=self.channels, rate=frame.sample_rate,
                                       target_rate=self.rate)
        self.samples += samples.shape[1]
        return samples

    def notes(self) -> list[str]:
        """FFmpeg's warnings, a layout change and skipped packets (after ``chunks``)."""
        notes = _decode._log_text(self.logs) + self._changed
        if self.corrupt:
            notes.append(f"{self.codec}: {self.corrupt} corrupt packet{'s' if self.corrupt != 1 else ''} skipped")
        if self.last_packet_failed and self.samples:
            # Formats without a declared length (raw AAC, say) show a cut only here.
            notes.append(f"{self.codec}: the last packet does not decode: the recording may be truncated "
                         f"after {self.samples / self.rate:.2f} s")
        return notes

    def problem(self) -> str | None:
        """The truncation to report once every chunk is out, or None."""
        decoded = self.samples / self.rate if self.rate else 0.0
        if self.declared is not None and decoded < self.declared - _decode.truncation_slack(self.declared):
            return f"truncated after {decoded:.2f} s (the {self.kind} header declares {self.declared:.2f} s)"
        if self.stop_error is not None and self.declared is None:
            return (f"truncated or corrupt: {self.codec} decoding stopped after {decoded:.2f} s "
                    f"({_decode.error_detail(self.stop_error)})")
        return None


def _audio_stream(path: str, container, logs):
    if not container.streams.audio:
        held = ", ".join(f"{s.type} {getattr(s.codec_context, 'name', '?')}" for s in container.streams)
        raise BadMediaError(path, f"no audio stream (the file holds: {held or 'no streams'})")
    stream = container.streams.audio[0]
    if stream.codec_context is None:
        raise _decode._unsupported(path, stream, logs)
    return stream

