"""Video clips for training: examples, labels and targets, and a windowed tf.data pipeline.

Decoding (``read_clip``, ``iter_frames``) lives in ``pipelines.video``; this module picks
the examples and their class ids (``examples_and_labels``), finds per-frame regression
targets (``load_frame_targets``: a sidecar ``<video>.targets.csv/.npy`` or
``Example.targets``) and cuts decoded clips into windows for ``Model.fit``
(``video_dataset``). Every public name here is importable from ``pipelines.video`` too;
``pipelines.frame_cache`` shares the helpers.

>>> load_frame_targets("clip.mp4", "0.5 0.25 1")
array([0.5 , 0.25, 1.  ], dtype=float32)
>>> ds = video_dataset(src, window_frames=16, hop_frames=8, fps=12, size=(64, 64))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.report import BadInputReport

__all__ = [
    "example_path",
    "examples_and_labels",
    "frame_target_spec",
    "load_frame_targets",
    "video_dataset",
]

# --------------------------------------------------------------------------- targets


def load_frame_targets(video_path: str | os.PathLike, targets: Any = None) -> np.ndarray | None:
    """Per-frame regression targets for a video: float32 [source_frames], or None.

    ``targets`` may be a sequence of numbers, a path to a .npy/.csv file, or a string of
    numbers separated by spaces or ';' (a CSV column). Without it, a sidecar file
    ``<video>.targets.npy`` or ``<video>.targets.csv`` next to the video is used.

    >>> load_frame_targets("clip.mp4", "0.5 0.25 1")
    array([0.5 , 0.25, 1.  ], dtype=float32)
    """
    def from_file(p: Path) -> np.ndarray:
        if p.suffix == ".npy":
            return np.load(p).astype(np.float32).reshape(-1)
        return np.loadtxt(p, delimiter=",", dtype=np.float32, ndmin=1).reshape(-1)

    if targets is None:
        video_path = Path(video_path)
        for suffix in (".targets.npy", ".targets.csv"):
            sidecar = video_path.with_name(video_path.name + suffix)
            if sidecar.is_file():
                return from_file(sidecar)
        return None
    if isinstance(targets, (str, os.PathLike)):
        text = os.fspath(targets).strip()
        if text.endswith((".npy", ".csv")):
            p = Path(text)
            if not p.is_absolute():
                p = Path(video_path).parent / p
            return from_file(p)
        return np.asarray(text.replace(";", " ").replace(",", " ").split(), dtype=np.float32)
    return np.asarray(targets, dtype=np.float32).reshape(-1)


# --------------------------------------------------------------------------- tf.data


def examples_and_labels(source, indices) -> tuple[list, list]:
    """(the chosen Examples, their class ids, -1 where unlabelled) of a source or list."""
    examples = list(getattr(source, "examples", source))
    label_ids = None
    if hasattr(source, "labels_as_ids"):
        try:
            label_ids = list(np.asarray(source.labels_as_ids()).reshape(len(examples), -1)[:, 0])
        except Exception:  # a regression source has no class ids
            label_ids = None
    if indices is None:
        indices = range(len(examples))
    chosen, labels = [], []
    for i in indices:
        example = examples[i]
        chosen.append(example)
        if label_ids is not None:
            labels.append(int(label_ids[i]))
        else:
            label = getattr(example, "label", None)
            labels.append(int(label) if isinstance(label, (int, np.integer)) else -1)
    return chosen, labels


def frame_target_spec(example):
    """Example.targets when it names per-frame targets (a path or a string), else None.

    A tuple of numbers in ``Example.targets`` is a per-clip target (sources.from_manifest).
    """
    targets = getattr(example, "targets", None)
    return targets if isinstance(targets, (str, os.PathLike)) else None


def example_path(example) -> str:
    """The file path of an Example, or of a plain path."""
    return os.fspath(getattr(example, "path", example))


def video_dataset(
    source,
    *,
    window_frames: int,
    hop_frames: int,
    indices: Sequence[int] | None = None,
    target: str = "label",
    delay: int = 0,
    fps: float | None = None,
    size: tuple[int, int] = (64, 64),
    resize_mode: str = "crop",
    color: str = "rgb",
    max_frames: int | None = None,
    feature_layer=None,
    batch_size: int = 8,
    shuffle: bool = False,
    shuffle_buffer: int = 256,
    seed: int = 0,
    pad_end: bool = True,
    with_clip_index: bool = False,
    report: BadInputReport | None = None,
    allow_partial: bool = True,
    backend: str | None = None,
):
    """Windows of decoded clips as a tf.data.Dataset.

    Yields ``({"inputs": [batch, window_frames, ...], "mask": [batch, window_frames] bool}, labels)``.
    ``inputs`` are raw uint8 frames [batch, window_frames, h, w, 3] (a model whose first layer is
    a ``seqapps.layers.video_frontends`` layer), or, with ``feature_layer``, that layer's
    per-frame features [batch, window_frames, features] computed over the whole clip.

    Args:
        source: a ``pipelines.sources.DataSource``, a list of Examples or of paths.
        window_frames, hop_frames: window and hop in output frames (``pipelines.windows``).
        indices: which examples to use (e.g. one split); default all.
        target: "label" (per-clip class id from ``source.labels_as_ids()``; labels
            [batch]), "clip_targets" (per-clip regression targets ``Example.targets``;
            labels [batch, k]) or "frame" (per-frame regression targets from a sidecar
            ``<video>.targets.csv/.npy``, or ``Example.targets`` when it is a file path or a
            string of numbers; labels [batch, window_frames] with the target of
            frame n being y(n + delay)); then a third element, sample weights
            [batch, window_frames], is 0 where the delayed target lies past the clip end or on
            padding (Keras ``fit`` reads it as sample_weight).
        with_clip_index: add ``"clip_index"`` int64 [batch] (the example's index in
            ``source``, as in ``pipelines.audio``) to the inputs so window predictions
            can be aggregated per clip.
        report: where bad files go. ``None`` means strict, as everywhere in pipelines:
            the first bad file raises ``BadMediaError`` (while iterating); with a lenient
            ``BadInputReport()`` bad files are skipped and recorded in it.
        backend: frame reader, as ``iter_frames``.

    Windows never cross clips. Decoding runs in Python on the fly; for several epochs
    prefer the feature cache (``pipelines.frame_cache``).

    >>> ds = video_dataset(src, window_frames=16, hop_frames=8, fps=12, size=(64, 64))  # doctest: +SKIP
    >>> inputs, labels = next(iter(ds))  # doctest: +SKIP
    """
    import tensorflow as tf

    from pipelines import windows as windowing

    # Here, not at the top: pipelines.video re-exports this module's names (import cycle).
    from pipelines.video import check_options, read_clip_with_indices

    windowing.check_window_arguments(window_frames=window_frames, hop_frames=hop_frames, batch_size=batch_size,
                                     target=target)
    check_options(fps=fps, size=size, resize_mode=resize_mode, color=color, max_frames=max_frames)
    examples, labels = examples_and_labels(source, indices)
    source_indices = range(len(examples)) if indices is None else [int(i) for i in indices]
    if report is None:
        report = BadInputReport(strict=True)
    channels = 1 if color == "gray" else 3

    if feature_layer is not None:
        probe = np.zeros((1, 2, size[0], size[1], channels), np.uint8)
        feature_dim = int(feature_layer(probe).shape[-1])
        input_spec = tf.TensorSpec((window_frames, feature_dim), tf.float32)
    else:
        input_spec = tf.TensorSpec((window_frames, size[0], size[1], channels), tf.uint8)
    if target == "label":
        label_specs = (tf.TensorSpec((), tf.int32),)
    elif target == "clip_targets":
        label_specs = (tf.TensorSpec((None,), tf.float32),)
    else:
        label_specs = (tf.TensorSpec((window_frames,), tf.float32), tf.TensorSpec((window_frames,), tf.float32))

    def generate():
        for clip_position, (example, label) in enumerate(zip(examples, labels, strict=True)):
            path = example_path(example)
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
            if result is None:
                continue
            frames, source_index = result
            if target == "frame":
                per_frame = load_frame_targets(path, frame_target_spec(example))
                if per_frame is None or len(per_frame) <= int(source_index.max()):
                    report.add(path, "no per-frame targets (or fewer targets than frames)")
                    continue
                frame_targets = per_frame[source_index]
                targets, target_mask = windowing.window_targets(
                    frame_targets, window=window_frames, hop=hop_frames, delay=delay, pad_end=pad_end
                )
            if feature_layer is not None:
                values = np.asarray(feature_layer(frames[None]))[0].astype(np.float32)
            else:
                values = frames
            windows, mask = windowing.frame_windows(
                values, window=window_frames, hop=hop_frames, pad_end=pad_end
            )
            windows, mask = np.asarray(windows), np.asarray(mask).astype(bool)
            for w in range(len(windows)):
                inputs = {"inputs": windows[w], "mask": mask[w]}
                if with_clip_index:
                    inputs["clip_index"] = np.int64(source_indices[clip_position])
                if target == "label":
                    yield inputs, np.int32(label)
                elif target == "clip_targets":
                    yield inputs, np.asarray(example.targets, np.float32).reshape(-1)
                else:
                    # Frames whose delayed target lies past the clip get weight 0.
                    yield inputs, targets[w].astype(np.float32), target_mask[w].astype(np.float32)

    element_inputs = {"inputs": input_spec, "mask": tf.TensorSpec((window_frames,), tf.bool)}
    if with_clip_index:
        element_inputs["clip_index"] = tf.TensorSpec((), tf.int64)
    dataset = tf.data.Dataset.from_generator(
        generate, output_signature=(element_inputs, *label_specs)
    )
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
