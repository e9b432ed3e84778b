"""Video frames through FFmpeg (PyAV): exact presentation times, rotation, any codec.

The frame reader behind ``pipelines.video`` when ``backend="pyav"``: each frame comes with
its presentation timestamp as stored in the container (variable frame rate clips from
phones keep their real timing), turned upright by the display matrix phones write, from
any stream FFmpeg decodes. Problems part-way (a decoder error, a resolution change, fewer
frames than declared) are appended to ``problems`` in the same words as the OpenCV reader.

>>> problems = []
>>> for frame, index, ms in raw_frames("clip.mp4", problems):  # doctest: +SKIP
...     print(frame.shape, index, ms)
(272, 640, 3) 0 0.0
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np

from pipelines.decode import error_detail
from seqapps.errors import BadMediaError

__all__ = ["open_video", "raw_frames"]

# Same slack as the OpenCV reader: muxers round the declared count.
_MISSING_FRAMES_TOLERANCE = 0.05


def _streams_held(container) -> str:
    return ", ".join(f"{s.type} {getattr(s.codec_context, 'name', None) or '?'}" for s in container.streams) or "nothing"


def _starts_like_mp4(path: str) -> bool:
    # A text file named .mp4 also lacks a moov atom: only a real MP4 start means truncated.
    from pipelines.decode import sniff_format

    with open(path, "rb") as f:
        return sniff_format(f.read(64)) == "mp4"


def open_video(path: str | os.PathLike):
    """(container, video stream), or ``BadMediaError`` with the true reason."""
    import av

    from pipelines.decode import _enable_ffmpeg_warnings

    _enable_ffmpeg_warnings()
    path = os.fspath(path)
    with av.logging.Capture(local=True) as logs:
        try:
            container = av.open(path, metadata_errors="ignore")
        except PermissionError:
            raise BadMediaError(path, "permission denied") from None
        except av.FFmpegError as error:
            messages = " ".join(m for _, _, m in logs)
            if "moov atom not found" in messages and _starts_like_mp4(path):
                raise BadMediaError(path, "truncated: the MP4 index (moov atom) is missing") from None
            raise BadMediaError(path, f"cannot be opened as a video ({error_detail(error)})") from None
    if not container.streams.video:
        held = _streams_held(container)
        container.close()
        raise BadMediaError(path, f"no video stream (the file holds: {held})")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise BadMediaError(path, "unsupported codec (FFmpeg has no decoder for the video stream)")
    stream.thread_type = "AUTO"  # frame and slice threads: decoding is the costly part
    return container, stream


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    # VideoFrame.rotation is counter-clockwise in degrees (np.rot90's sense); cv2.rotate
    # turns in one C pass, twice as fast as np.rot90 plus a contiguous copy.
    import cv2

    quarter = int(round(rotation / 90)) % 4
    if not quarter:
        return image
    turn = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}[quarter]
    return cv2.rotate(image, turn)


def raw_frames(path: str | os.PathLike, problems: list[str], *, container=None, stream=None,
               pixel_format: str = "bgr24") -> Iterator[tuple[np.ndarray, int, float]]:
    """(frame [h, w, 3] uint8, source index, presentation time in ms) until the end or a break.

    Times are the container's timestamps (``frame.time``), not ``index / fps``; frames
    without a timestamp get the previous one plus one nominal period. The container is
    closed when the generator ends.
    """
    import av
    from av.video.reformatter import VideoReformatter

    if container is None:
        container, stream = open_video(path)
    declared = int(stream.frames or 0)
    rate = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
    first_shape = None
    last_ms = -math.inf
    index = 0
    stopped_by_error = False
    # One converter for the whole clip: frame.to_ndarray(format=...) sets up a new
    # swscale context per frame, which doubled the time of small clips (measured).
    reformatter = VideoReformatter()
    try:
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.FFmpegError as error:
                if declared - index > max(2, _MISSING_FRAMES_TOLERANCE * declared):
                    stopped_by_error = True
                    break  # a file cut short: the count below says how much is missing
                problems.append(f"decoding failed after {index} frames ({error_detail(error)})")
                return
            image = _upright(reformatter.reformat(frame, format=pixel_format).to_ndarray(), frame.rotation or 0)
            if first_shape is None:
                first_shape = image.shape
            elif image.shape != first_shape:
                problems.append(
                    f"resolution changed from {first_shape[1]}x{first_shape[0]} to "
                    f"{image.shape[1]}x{image.shape[0]} at frame {index}"
                )
                return
            ms = frame.time * 1000.0 if frame.time is not None else math.nan
            if not math.isfinite(ms) or ms <= last_ms:
                ms = last_ms + 1000.0 / rate if math.isfinite(last_ms) else 0.0
            last_ms = ms
            yield image, index, ms
            index += 1
        if index and declared > 0:
            missing = declared - index
            # AVI stores variable-rate video as a fixed-rate stream with empty frames, so
            # its count overstates; a stream that ended cleanly at its duration lacks
            # nothing. (A cut file's duration is what is left, hence the error test.)
            duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
            reaches_end = duration is not None and last_ms / 1000.0 >= duration - 2.0 / rate
            if missing > max(2, _MISSING_FRAMES_TOLERANCE * declared) and (stopped_by_error or not reaches_end):
                problems.append(f"only {index} of {declared} declared frames decode")
    finally:
        container.close()
