"""Demo video data written as real files: classes that only time can tell apart.

Four classes of a square on a noisy background: ``moving_left``, ``moving_right``,
``growing`` and ``shrinking``. Position, size, colour, speed, background and noise vary
per clip, and any single frame could come from any class; only the change over time
tells them apart. Files are MJPG ``.avi`` by default (this OpenCV build writes mp4v
``.mp4`` too; H.264 writing is not available in the pip wheels).

>>> root = write_synthetic_video("demo_video", n_per_class=5)  # doctest: +SKIP
>>> sorted(p.name for p in root.iterdir())  # doctest: +SKIP
['growing', 'manifest.csv', 'moving_left', 'moving_right', 'shrinking']
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np

from seqapps.atomic import atomic_path
from seqapps.errors import invalid_argument

CLASSES = ("moving_left", "moving_right", "growing", "shrinking")
_CODECS = {".avi": "MJPG", ".mp4": "mp4v"}


def _clip_frames(kind: str, *, size, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 BGR frames [n_frames, h, w, 3] of one clip of class ``kind``."""
    h, w = size
    background = rng.integers(0, 90, size=3)
    color = rng.integers(130, 256, size=3)
    noise = rng.uniform(2.0, 12.0)
    short = min(h, w)
    if kind in ("moving_left", "moving_right"):
        side = np.full(n_frames, rng.uniform(0.15, 0.3) * short)
        travel = rng.uniform(0.35, 0.6) * w
        start = rng.uniform(side[0] / 2, w - travel - side[0] / 2)
        xs = start + np.linspace(0.0, travel, n_frames)
        if kind == "moving_left":
            xs = xs[::-1]
        ys = np.full(n_frames, rng.uniform(side[0] / 2, h - side[0] / 2))
    else:
        small, large = sorted(rng.uniform(0.1, 0.55, size=2) * short)
        large = max(large, small + 0.2 * short)  # the change must be visible
        side = np.linspace(small, large, n_frames)
        if kind == "shrinking":
            side = side[::-1]
        margin = large / 2
        xs = np.full(n_frames, rng.uniform(margin, max(margin, w - margin)))
        ys = np.full(n_frames, rng.uniform(margin, max(margin, h - margin)))
    frames = np.empty((n_frames, h, w, 3), np.uint8)
    for t in range(n_frames):
        canvas = np.empty((h, w, 3), np.float32)
        canvas[:] = background
        half = side[t] / 2
        x0, x1 = int(round(xs[t] - half)), int(round(xs[t] + half))
        y0, y1 = int(round(ys[t] - half)), int(round(ys[t] + half))
        canvas[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = color
        canvas += rng.normal(0.0, noise, size=canvas.shape)
        frames[t] = np.clip(canvas, 0, 255).astype(np.uint8)
    return frames


def write_synthetic_video(
    out_dir: str | os.PathLike,
    *,
    n_per_class: int = 20,
    size: tuple[int, int] = (64, 64),
    n_frames: int = 24,
    fps: float = 12,
    seed: int = 0,
    extension: str = ".avi",
) -> Path:
    """Write ``n_per_class`` clips per class into ``out_dir/<class>/`` plus manifest.csv.

    Args:
        out_dir: folder to create (existing files with the same names are replaced).
        n_per_class: clips per class (4 classes, see ``CLASSES``).
        size: (height, width) of the frames.
        n_frames, fps: clip length in frames and its frame rate.
        seed: clips are a deterministic function of the seed.
        extension: ".avi" (MJPG, near lossless) or ".mp4" (mp4v).

    Returns:
        ``out_dir`` as a Path. ``manifest.csv`` has columns path (relative to out_dir),
        label, group (one per clip), n_frames, fps.

    >>> root = write_synthetic_video("demo_video", n_per_class=2, n_frames=12)  # doctest: +SKIP
    >>> (root / "manifest.csv").is_file()  # doctest: +SKIP
    True
    """
    if not (isinstance(n_per_class, int) and n_per_class > 0):
        raise invalid_argument("n_per_class", n_per_class, "a positive integer")
    if not (isinstance(n_frames, int) and n_frames >= 2):
        raise invalid_argument("n_frames", n_frames, "an integer >= 2")
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise invalid_argument("fps", fps, "a positive number")
    if extension not in _CODECS:
        raise invalid_argument("extension", extension, f"one of {tuple(_CODECS)}")
    h, w = int(size[0]), int(size[1])
    if h < 16 or w < 16:
        raise invalid_argument("size", size, "a (height, width) pair, each at least 16")
    root = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows = []
    fourcc = cv2.VideoWriter_fourcc(*_CODECS[extension])
    for kind in CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            relative = f"{kind}/{kind}_{i:03d}{extension}"
            frames = _clip_frames(kind, size=(h, w), n_frames=n_frames, rng=rng)
            # A temporary renamed into place: a crash never leaves half a clip.
            with atomic_path(root / relative) as tmp:
                writer = cv2.VideoWriter(os.fspath(tmp), fourcc, float(fps), (w, h))
                if not writer.isOpened():
                    raise RuntimeError(f"OpenCV cannot write {extension} files here ({tmp})")
                try:
                    for frame in frames:
                        writer.write(frame)
                finally:
                    writer.release()
            rows.append(
                {"path": relative, "label": kind, "group": f"{kind}_{i:03d}",
                 "n_frames": n_frames, "fps": fps}
            )
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "group", "n_frames", "fps"])
        writer.writeheader()
        writer.writerows(rows)
    return root
