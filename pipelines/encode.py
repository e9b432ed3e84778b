"""Write audio and video with FFmpeg's encoders (PyAV): media for tests and benchmarks.

Real users' files come from phones, browsers and cameras: AAC in MP4, Opus in WebM or
Ogg, variable frame rate, rotation flags. These writers make such files in a temporary
folder, so the decoders are tested on the formats people have, without shipping media.

>>> import numpy as np
>>> write_audio("tone.m4a", np.zeros(16000, np.float32), sample_rate=16000, codec="aac")  # doctest: +SKIP
>>> write_video("vfr.mp4", np.zeros((5, 48, 64, 3), np.uint8), times=[0, .1, .3, .35, .9])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

__all__ = ["write_audio", "write_video"]


def write_audio(path: str | os.PathLike, waveform: np.ndarray, *, sample_rate: int, codec: str,
                container: str | None = None, bit_rate: int | None = None,
                options: dict[str, str] | None = None) -> None:
    """Encode a waveform (``[samples]`` or ``[channels, samples]``, float32 or int16) with ``codec``.

    Args:
        path: output file; its extension picks the container unless ``container`` is given
            (e.g. ``container="mp4"`` writes AAC into a file named ``.mp3``).
        waveform: samples in [-1, 1].
        sample_rate: the rate the encoder runs at (Opus: 8000, 12000, 16000, 24000 or 48000).
        codec: an FFmpeg encoder name: ``"aac"``, ``"libopus"``, ``"libmp3lame"``,
            ``"wmav2"``, ``"libopencore_amrnb"`` (8 kHz mono), ``"pcm_s16le"``, ``"flac"``.
        bit_rate: encoder bit rate in bit/s (None: the encoder's default).
        options: container options, e.g. ``{"movflags": "+faststart"}``.
    """
    import av

    # int16 samples are written as they are (the same PCM as a 16-bit WAV of them);
    # anything else as float32.
    data = np.atleast_2d(waveform if np.asarray(waveform).dtype == np.int16 else np.asarray(waveform, np.float32))
    layout = "mono" if data.shape[0] == 1 else "stereo"
    with av.open(os.fspath(path), "w", format=container, options=options or {}) as out:
        stream = out.add_stream(codec, rate=int(sample_rate), layout=layout)
        if bit_rate:
            stream.bit_rate = int(bit_rate)
        # Packed float samples; the stream's encoder converts to what the codec takes.
        sample_format = "s16" if data.dtype == np.int16 else "flt"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data.T).reshape(1, -1), format=sample_format,
                                           layout=layout)
        frame.rate = int(sample_rate)
        frame.pts, frame.time_base = 0, Fraction(1, int(sample_rate))
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


def write_video(path: str | os.PathLike, frames: np.ndarray, *, times: Sequence[float] | None = None,
                fps: float = 25.0, codec: str = "libx264", container: str | None = None,
                rotation: int | None = None, pix_fmt: str = "yuv420p") -> list[float]:
    """Encode RGB frames ``[time, height, width, 3]`` uint8; returns the written times (s).

    Args:
        times: presentation time of each frame in seconds (variable frame rate); default
            ``k / fps``. Stored exactly at millisecond precision (time base 1/1000).
        fps: the nominal rate (and the rate when ``times`` is None).
        codec: ``"libx264"``, ``"mpeg4"``, ``"mjpeg"``, ``"libvpx-vp9"``, ``"ffv1"``, ...
        rotation: a display-matrix rotation in degrees counter-clockwise (90, 180, -90), as
            phones write it; the stored pixels are not rotated, players (and decoders that
            honour it) turn them.
    """
    import av

    frames = np.asarray(frames, np.uint8)
    if times is None:
        times = [k / fps for k in range(len(frames))]
    with av.open(os.fspath(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            _set_rotation(stream, rotation)
        for image, t in zip(frames, times, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = int(round(t * 1000))
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return [int(round(t * 1000)) / 1000 for t in times]


def _set_rotation(stream, degrees: int) -> None:
    """Store the display matrix phones write (counter-clockwise degrees, as PyAV reads it back)."""
    stream.set_display_rotation(int(degrees))
