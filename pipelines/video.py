"""Video decoding at the edge (PyAV or OpenCV): frames resampled, resized and colour-converted.

Only decoding, frame-rate resampling, resizing and colour conversion run here in Python;
frame features (pixels, histograms, motion, CNN embeddings) are Keras layers in
``seqapps.layers.video_frontends`` so that a served model computes exactly what training did.

Frames stream: ``iter_frames`` holds at most two decoded frames at a time.
The windowed tf.data pipeline and the example/target helpers are in
``pipelines.video_dataset`` (``video_dataset``, ``load_frame_targets``; importable from
here too).

>>> frames = read_clip("clip.avi", fps=10, size=(64, 64))  # doctest: +SKIP
>>> frames.shape, frames.dtype  # doctest: +SKIP
((20, 64, 64, 3), dtype('uint8'))
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import cv2
import numpy as np

from pipelines.decode import check_file
from pipelines.report import BadInputReport
from seqapps.errors import BadMediaError, invalid_argument

# OpenCV's FFmpeg prints its log ("moov atom not found") straight to stderr and reads this
# once, at its first capture; the reader reports each bad file with a reason instead. A
# user's own setting wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

RESIZE_MODES = ("crop", "pad")
COLORS = ("rgb", "bgr", "gray")

# A decoded count this far below the container's declared count means the decoder gave up
# part-way (tree.avi: 68 of 444). Containers written by some muxers round their count, so a
# couple of frames' slack avoids calling a complete file broken.
_MISSING_FRAMES_TOLERANCE = 0.05


# Frame readers: FFmpeg through PyAV (exact timestamps, rotation, codecs OpenCV's build
# lacks such as AV1; faster on large frames) or OpenCV. Measured side by side in
# benchmarks/pipeline_video.py (benchmarks/README.md, "Decoding").
BACKENDS = ("pyav", "opencv")
DEFAULT_BACKEND = "pyav"

# --------------------------------------------------------------------------- validation


def check_options(*, fps, size, resize_mode, color, max_frames) -> None:
    """Raise ConfigError naming the first bad decoding option (see iter_frames)."""
    if fps is not None and not (isinstance(fps, (int, float)) and fps > 0 and math.isfinite(fps)):
        raise invalid_argument("fps", fps, "a positive number or None")
    if size is not None:
        if (
            not isinstance(size, (tuple, list))
            or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size)
        ):
            raise invalid_argument("size", size, "a (height, width) pair of positive integers or None")
    if resize_mode not in RESIZE_MODES:
        raise invalid_argument("resize_mode", resize_mode, f"one of {RESIZE_MODES}")
    if color not in COLORS:
        raise invalid_argument("color", color, f"one of {COLORS}")
    if max_frames is not None and not (isinstance(max_frames, (int, np.integer)) and max_frames > 0):
        raise invalid_argument("max_frames", max_frames, "a positive integer or None")


# --------------------------------------------------------------------------- frame ops


def resize_frame(frame: np.ndarray, *, size: tuple[int, int], mode: str = "crop") -> np.ndarray:
    """Resize one frame [h, w, c] to ``size`` = (height, width) keeping its aspect ratio.

    ``mode="crop"`` scales until the frame covers the target and cuts the centre;
    ``mode="pad"`` scales until the frame fits and pads the borders with zeros.

    >>> resize_frame(np.zeros((272, 640, 3), np.uint8), size=(64, 64)).shape
    (64, 64, 3)
    """
    target_h, target_w = int(size[0]), int(size[1])
    h, w = frame.shape[:2]
    if (h, w) == (target_h, target_w):
        return frame
    if mode == "crop":
        # Crop in source coordinates first, then one resize: fewer pixels to interpolate.
        scale = max(target_h / h, target_w / w)
        crop_h = min(h, max(1, round(target_h / scale)))
        crop_w = min(w, max(1, round(target_w / scale)))
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        region = frame[top : top + crop_h, left : left + crop_w]
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        out = cv2.resize(region, (target_w, target_h), interpolation=interpolation)
    elif mode == "pad":
        scale = min(target_h / h, target_w / w)
        new_h = min(target_h, max(1, round(h * scale)))
        new_w = min(target_w, max(1, round(w * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(frame, (new_w, new_h), interpolation=interpolation)
        top, left = (target_h - new_h) // 2, (target_w - new_w) // 2
        out = cv2.copyMakeBorder(
            resized,
            top,
            target_h - new_h - top,
            left,
            target_w - new_w - left,
            cv2.BORDER_CONSTANT,
            value=0,
        )
    else:
        raise invalid_argument("mode", mode, f"one of {RESIZE_MODES}")
    if out.ndim == 2 and frame.ndim == 3:  # cv2 drops a single channel axis
        out = out[..., None]
    return out


def _convert_color(frame_bgr: np.ndarray, color: str) -> np.ndarray:
    if color == "rgb":
        return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    if color == "gray":
        return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)[..., None]
    return frame_bgr


# --------------------------------------------------------------------------- decoding


def _raw_frames(capture, path, problems: list[str]) -> Iterator[tuple[np.ndarray, int, float]]:
    """(bgr frame, source index, timestamp in ms) until the stream ends or breaks.

    Problems found on the way (a resolution change, a decoder exception, a stream shorter
    than declared) are appended to ``problems``; frames before them are still yielded.
    """
    declared_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    declared_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    first_shape = None
    last_ms = -math.inf
    index = 0
    while True:
        try:
            ok, frame = capture.read()
        except cv2.error as err:  # a decoder crash mid-file is a broken file, not a bug
            problems.append(f"decoding failed after {index} frames ({err})".splitlines()[0])
            return
        if not ok or frame is None:
            break
        if first_shape is None:
            first_shape = frame.shape
        elif frame.shape != first_shape:
            problems.append(
                f"resolution changed from {first_shape[1]}x{first_shape[0]} to "
                f"{frame.shape[1]}x{frame.shape[0]} at frame {index}"
            )
            return
        ms = float(capture.get(cv2.CAP_PROP_POS_MSEC))
        # Some backends report no or non-increasing timestamps; then the declared rate is
        # the only clock there is.
        if not math.isfinite(ms) or ms <= last_ms:
            ms = index * 1000.0 / declared_fps if declared_fps > 0 else last_ms + 1000.0 / 30
        last_ms = ms
        yield frame, index, ms
        index += 1
    if index and declared_count > 0:
        missing = declared_count - index
        if missing > max(2, _MISSING_FRAMES_TOLERANCE * declared_count):
            problems.append(f"only {index} of {declared_count} declared frames decode")


def _resample(
    raw: Iterator[tuple[np.ndarray, int, float]], fps: float | None
) -> Iterator[tuple[np.ndarray, int]]:
    """Keep, for each target time k / fps, the decoded frame whose timestamp is nearest.

    Times are relative to the first frame's timestamp; ties go to the earlier frame. When
    ``fps`` exceeds the source rate, frames repeat. Targets after the last frame are not
    produced.
    """
    if fps is None:
        for frame, index, _ in raw:
            yield frame, index
        return
    period_ms = 1000.0 / fps
    start_ms = None
    k = 0
    previous = None  # (frame, index, relative ms)
    for frame, index, ms in raw:
        if start_ms is None:
            start_ms = ms
        relative = ms - start_ms
        while k * period_ms <= relative + 1e-6:
            target = k * period_ms
            if previous is not None and target - previous[2] <= relative - target:
                yield previous[0], previous[1]
            else:
                yield frame, index
            k += 1
        previous = (frame, index, relative)


def iter_indexed_frames(
    path,
    *,
    fps,
    size,
    resize_mode,
    color,
    max_frames,
    report,
    allow_partial,
    backend=None,
) -> Iterator[tuple[np.ndarray, int]]:
    """Frames with the index of the source frame they came from (for per-frame targets)."""
    check_options(fps=fps, size=size, resize_mode=resize_mode, color=color, max_frames=max_frames)
    backend = DEFAULT_BACKEND if backend is None else backend
    if backend not in BACKENDS:
        raise invalid_argument("backend", backend, f"one of {BACKENDS}")
    report = BadInputReport(strict=True) if report is None else report
    path = os.fspath(path)
    try:
        check_file(path)  # the true reason: dangling link, not a file, empty, ...
    except BadMediaError as error:
        report.add(path, error.reason)
        return
    problems: list[str] = []
    if backend == "pyav":
        from pipelines import video_av

        try:
            container, stream = video_av.open_video(path)
        except BadMediaError as error:
            report.add(path, error.reason)
            return
        capture = None
        raw = video_av.raw_frames(path, problems, container=container, stream=stream)
    else:
        capture = cv2.VideoCapture(path)
        if not capture.isOpened():
            capture.release()
            report.add(path, "cannot be opened as a video (unreadable or not a video file)")
            return
        raw = _raw_frames(capture, path, problems)
    try:
        produced = 0
        last_index = None
        last_output = None
        stopped_early = False
        for frame, index in _resample(raw, fps):
            if index != last_index:  # an upsampled frame repeats: convert it once
                out = _convert_color(frame, color)
                if size is not None:
                    out = resize_frame(out, size=size, mode=resize_mode)
                last_output, last_index = out, index
            yield last_output, index
            produced += 1
            if max_frames is not None and produced >= max_frames:
                stopped_early = True
                break
        if produced == 0:
            reason = "no decodable frame"
            if problems:
                reason += f" ({problems[0]})"
            report.add(path, reason)
            return
        if problems and not stopped_early:
            if allow_partial:
                report.add(path, problems[0], kept_frames=produced)
            else:
                report.add(path, problems[0] + " (partial clips not allowed)")
                # A stream cannot take back frames it already gave; tell the consumer to
                # drop them (read_clip and video_dataset do).
                raise BadMediaError(path, problems[0])
    finally:
        if capture is not None:
            capture.release()
        else:
            raw.close()  # closes the container
            from pipelines.decode import take_unattributed_warnings

            # FFmpeg's decoder threads log outside any Python capture: kept for the report.
            for note in take_unattributed_warnings():
                report.warn(note, path=path)


def iter_frames(
    path: str | os.PathLike,
    *,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    resize_mode: str = "crop",
    color: str = "rgb",
    max_frames: int | None = None,
    report: BadInputReport | None = None,
    allow_partial: bool = True,
    backend: str | None = None,
) -> Iterator[np.ndarray]:
    """Stream the decoded frames of a video file: uint8 [height, width, 3] each.

    Args:
        path: a video file OpenCV can read.
        fps: resample to this frame rate by timestamps (the frame nearest each time
            k / fps is kept; frames repeat when fps is above the source rate). None keeps
            every decoded frame.
        size: (height, width) to resize to, keeping the aspect ratio (see resize_mode).
        resize_mode: "crop" (cover, then cut the centre) or "pad" (fit, then zero borders).
        color: "rgb", "bgr" or "gray" (gray frames are [height, width, 1]).
        max_frames: stop after this many output frames.
        report: where bad files go. None means strict: raise ``BadMediaError``.
        allow_partial: when a file breaks part-way, keep the frames decoded before the
            break (``report.add(..., kept_frames=N)``). When False the break is recorded as a
            skip and the stream ends with ``BadMediaError`` so the caller drops the frames.
        backend: ``"pyav"`` (FFmpeg: the container's own timestamps, rotation applied)
            or ``"opencv"``; None: ``DEFAULT_BACKEND``.

    A missing, unreadable or frameless file yields nothing and is recorded in ``report``.
    The capture is released however the generator ends.

    >>> for frame in iter_frames("clip.mp4", fps=10, size=(64, 64)):  # doctest: +SKIP
    ...     frame.shape
    (64, 64, 3)
    """
    for frame, _ in iter_indexed_frames(
        path,
        fps=fps,
        size=size,
        resize_mode=resize_mode,
        color=color,
        max_frames=max_frames,
        report=report,
        allow_partial=allow_partial,
        backend=backend,
    ):
        yield frame


def read_clip_with_indices(path, **options) -> tuple[np.ndarray, np.ndarray] | None:
    """A whole clip and the source frame index of each of its frames, or None.

    Same keyword arguments as ``iter_frames``. Returns ``(frames uint8 [time, h, w, c],
    source_index int64 [time])``: frame ``t`` is frame ``source_index[t]`` of the file
    (frames repeat or are dropped when ``fps`` resamples), which is how per-frame targets
    of the file are matched to the decoded frames. None for a file recorded as skipped
    in a non-strict ``report``.

    >>> frames, source_index = read_clip_with_indices("clip.mp4", fps=10)  # doctest: +SKIP
    """
    frames, indices = [], []
    try:
        for frame, index in iter_indexed_frames(path, **options):
            frames.append(frame)
            indices.append(index)
    except BadMediaError:
        if options.get("report") is None or options["report"].strict:
            raise
        return None  # recorded in the report already (allow_partial=False)
    if not frames:
        return None
    return np.stack(frames), np.asarray(indices, dtype=np.int64)


def read_clip(
    path: str | os.PathLike,
    *,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    resize_mode: str = "crop",
    color: str = "rgb",
    max_frames: int | None = None,
    report: BadInputReport | None = None,
    allow_partial: bool = True,
    backend: str | None = None,
) -> np.ndarray | None:
    """Decode a whole clip: uint8 [time, height, width, 3], or None for a skipped file.

    Same arguments as ``iter_frames``; a file recorded as skipped in a non-strict
    ``report`` gives None.

    >>> read_clip("clip.mp4", size=(32, 32), max_frames=8).shape  # doctest: +SKIP
    (8, 32, 32, 3)
    """
    result = read_clip_with_indices(
        path,
        fps=fps,
        size=size,
        resize_mode=resize_mode,
        color=color,
        max_frames=max_frames,
        report=report,
        allow_partial=allow_partial,
        backend=backend,
    )
    return None if result is None else result[0]


# --------------------------------------------------------------------------- edge features


def optical_flow_features(frames: np.ndarray, *, grid: tuple[int, int] = (2, 2)) -> np.ndarray:
    """Dense optical flow (OpenCV Farneback) summarised on a grid: float32 [time, features].

    Per grid cell: mean horizontal flow, mean vertical flow, mean flow magnitude (pixels per
    frame), so features = 3 * grid_h * grid_w. The first frame has no predecessor: zeros.
    Flow is iterative and not a TF op, so it is an edge feature (precompute and cache it).

    >>> optical_flow_features(np.zeros((5, 32, 32, 3), np.uint8)).shape
    (5, 12)
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise invalid_argument("frames", frames.shape, "an array [time, height, width, channels]")
    grid_h, grid_w = grid
    gray = [
        cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if f.shape[-1] == 3 else f[..., 0] for f in frames
    ]
    out = np.zeros((len(frames), 3 * grid_h * grid_w), np.float32)
    h, w = gray[0].shape
    rows = np.linspace(0, h, grid_h + 1).astype(int)
    cols = np.linspace(0, w, grid_w + 1).astype(int)
    for t in range(1, len(gray)):
        flow = cv2.calcOpticalFlowFarneback(gray[t - 1], gray[t], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        magnitude = np.linalg.norm(flow, axis=-1)
        cells = []
        for i in range(grid_h):
            for j in range(grid_w):
                cell = (slice(rows[i], rows[i + 1]), slice(cols[j], cols[j + 1]))
                cells += [flow[cell][..., 0].mean(), flow[cell][..., 1].mean(), magnitude[cell].mean()]
        out[t] = cells
    return out

# Examples, targets and the tf.data pipeline live in pipelines.video_dataset; kept
# importable from here. Imported last because that module reads clips with this one.
from pipelines.video_dataset import (  # noqa: E402, F401 (re-exports)
    example_path,  # noqa: F401
    examples_and_labels,  # noqa: F401
    frame_target_spec,  # noqa: F401
    load_frame_targets,  # noqa: F401
    video_dataset,  # noqa: F401
)
