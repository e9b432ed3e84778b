"""Writing the frame-feature cache: decoded clips -> Keras feature layer -> SequenceExample TFRecords.

The layout follows YouTube-8M's frame-level features: one ``tf.train.SequenceExample``
per clip with

* context: ``"id"`` (bytes, the file path), ``"labels"`` (int64 list, the class id; empty
  for unlabelled clips), ``"clip_index"`` (int64, the example's index in the source) and
  ``"targets"`` (float list, per-clip regression targets, possibly empty);
* feature lists: ``"rgb"`` (one float list per frame, or one quantised byte string per
  frame with ``quantize=(low, high)``) and ``"frame_targets"`` (one float per frame when
  per-frame targets exist).

``write_frame_cache`` decodes each clip as a stream (a background thread decodes while
TensorFlow runs the layer on chunks of frames), so the cached features are exactly what
the layer computes in a served model. The cache folder is named by a key over the files
(path, size, mtime), the settings and the layer (config and weights); it is written with
``pipelines.cache`` (temporary folder, rename, ``manifest.json`` describing it).
``read_frame_cache`` (in ``pipelines.frame_cache_reader``, importable from here too)
parses the records natively and windows them in the graph.

>>> from seqapps.layers.video_frontends import FramePixels
>>> cache = write_frame_cache(src, None, "cache", feature_layer=FramePixels(size=(16, 16)),
...                           fps=12, size=(64, 64))  # doctest: +SKIP
>>> ds = read_frame_cache(cache, window_frames=16, hop_frames=8, batch_size=32)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from pipelines import cache
from pipelines.frame_cache_reader import (  # the reader; its names stay importable from here
    dequantize,  # noqa: F401
    parse_clip,  # noqa: F401
    read_cached_clips,  # noqa: F401
    read_frame_cache,  # noqa: F401
    read_manifest,  # noqa: F401
)
from pipelines.progress import progress
from pipelines.report import BadInputReport
from pipelines.video import BACKENDS, DEFAULT_BACKEND, check_options, iter_indexed_frames
from pipelines.video_dataset import (
    example_path,
    examples_and_labels,
    frame_target_spec,
    load_frame_targets,
)
from seqapps.errors import BadMediaError, invalid_argument

FORMAT_VERSION = 2  # 2: clip_index is the source index (was the position in indices)
_LAYOUT = ("frame-features", FORMAT_VERSION)  # the manifest's `layout` (pipelines.cache)


# --------------------------------------------------------------------------- helpers


def _threaded(iterator: Iterator, *, maxsize: int = 4) -> Iterator:
    """Run ``iterator`` in a background thread (OpenCV releases the GIL while decoding)."""
    items: queue.Queue = queue.Queue(maxsize=maxsize)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(done)
        except BaseException as err:  # handed to the consumer, raised there
            items.put(err)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _clip_targets(example) -> list[float]:
    """Per-clip numeric targets of an Example (empty when it has none or a file path)."""
    targets = getattr(example, "targets", None)
    if targets is None or isinstance(targets, (str, os.PathLike)):
        return []
    try:
        return [float(v) for v in np.asarray(targets, dtype=np.float64).reshape(-1)]
    except (TypeError, ValueError):
        return []


def _layer_fingerprint(layer) -> dict:
    import keras

    digest = hashlib.sha256()
    for weight in layer.weights:
        digest.update(np.asarray(weight.numpy()).tobytes())
    return {
        "config": keras.saving.serialize_keras_object(layer),
        "weights_sha256": digest.hexdigest(),
    }


def _cache_key(examples, labels, settings: dict, layer) -> str:
    """pipelines.cache.content_key over the files, settings, labels, targets and layer."""
    targets = [getattr(example, "targets", None) for example in examples]
    return cache.content_key(
        [example_path(example) for example in examples], settings=settings,
        extra={"version": FORMAT_VERSION, "labels": labels, "layer": _layer_fingerprint(layer),
               "targets": [None if t is None else repr(t) for t in targets]},
        length=20,
    )


def _feature_function(layer, channels: int):
    """The layer as a tf.function over [1, time, h, w, c] uint8 chunks.

    Kept on the layer (outside Keras' attribute tracking), so writing several caches with
    one layer traces it once and the function goes away with the layer.
    """
    import tensorflow as tf

    functions = layer.__dict__.get("_seqapps_cache_functions")
    if functions is None:
        functions = {}
        object.__setattr__(layer, "_seqapps_cache_functions", functions)
    if channels not in functions:

        @tf.function(
            input_signature=[tf.TensorSpec((1, None, None, None, channels), tf.uint8)],
            reduce_retracing=True,
        )
        def features(frames):
            return tf.cast(layer(frames), tf.float32)

        functions[channels] = features
    return functions[channels]


def _chunks(frames_and_indices, chunk_frames: int):
    """Group a frame stream into (frames [n, h, w, c], source indices [n]) chunks."""
    frames, indices = [], []
    for frame, index in frames_and_indices:
        frames.append(frame)
        indices.append(index)
        if len(frames) == chunk_frames:
            yield np.stack(frames), np.asarray(indices)
            frames, indices = [], []
    if frames:
        yield np.stack(frames), np.asarray(indices)


def _quantize(features: np.ndarray, low: float, high: float) -> list[bytes]:
    scaled = np.clip((features - low) / (high - low), 0.0, 1.0) * 255.0
    return [row.tobytes() for row in np.round(scaled).astype(np.uint8)]


# --------------------------------------------------------------------------- writing


def write_frame_cache(
    source,
    indices: Sequence[int] | None,
    out_dir: str | os.PathLike,
    *,
    feature_layer,
    fps: float | None = None,
    size: tuple[int, int] = (64, 64),
    resize_mode: str = "crop",
    color: str = "rgb",
    shards: int = 1,
    report: BadInputReport | None = None,
    allow_partial: bool = True,
    chunk_frames: int = 16,
    context_frames: int = 1,
    quantize: tuple[float, float] | None = None,
    feature_key: str = "rgb",
    backend: str | None = None,
) -> Path:
    """Decode clips, compute frame features with a Keras layer, write SequenceExamples.

    Args:
        source: a ``pipelines.sources.DataSource``, a list of Examples or of paths.
        indices: which examples to cache (e.g. one split); None for all.
        out_dir: parent folder; the cache goes into ``out_dir/<key>/``. An existing cache
            with the same key is reused without decoding anything.
        feature_layer: a frame-feature layer [batch, time, h, w, c] -> [batch, time, d]
            (``seqapps.layers.video_frontends``).
        fps, size, resize_mode, color: decoding settings (``pipelines.video.iter_frames``).
        shards: number of TFRecord files (clip i goes to shard i % shards).
        report: bad files are skipped and recorded here (None: strict, raise).
        chunk_frames: frames per call of the layer (bounds memory on long clips).
        context_frames: frames of the previous chunk fed again in front of each chunk
            and dropped from its output, so layers that look back (``FrameMotion`` looks
            one frame back) give the same features as on the whole clip.
        quantize: (low, high) to store each frame's features as bytes (4x smaller,
            YouTube-8M style); None stores float32.
        feature_key: name of the feature list.
        backend: the frame reader, ``"pyav"`` or ``"opencv"`` (``pipelines.video.BACKENDS``;
            None: ``DEFAULT_BACKEND``). Part of the cache key: the readers may differ in
            timestamps and in what they can open.

    Returns:
        The cache folder (holding ``shard-XXXXX-of-YYYYY.tfrecord`` and ``manifest.json``).

    >>> write_frame_cache(paths, None, "cache", feature_layer=FramePixels(),
    ...                   fps=12, size=(64, 64), shards=2)  # doctest: +SKIP
    PosixPath('cache/3f1c...')
    """

    check_options(fps=fps, size=size, resize_mode=resize_mode, color=color, max_frames=None)
    for name, value in (("shards", shards), ("chunk_frames", chunk_frames)):
        if not (isinstance(value, (int, np.integer)) and value > 0):
            raise invalid_argument(name, value, "a positive integer")
    if not (isinstance(context_frames, int) and 0 <= context_frames < chunk_frames):
        raise invalid_argument("context_frames", context_frames, "an integer in [0, chunk_frames)")
    if quantize is not None and not (len(quantize) == 2 and quantize[0] < quantize[1]):
        raise invalid_argument("quantize", quantize, "None or a (low, high) pair with low < high")
    backend = DEFAULT_BACKEND if backend is None else backend
    if backend not in BACKENDS:
        raise invalid_argument("backend", backend, f"one of {BACKENDS}")
    report = BadInputReport(strict=True) if report is None else report
    examples, labels = examples_and_labels(source, indices)
    # clip_index is the example's index in the source (as in pipelines.audio), so the
    # indices are part of the key: the same files picked from another source differ.
    source_indices = list(range(len(examples))) if indices is None else [int(i) for i in indices]
    class_names = list(getattr(source, "class_names", []) or [])
    settings = {
        "source_indices": source_indices,
        "fps": fps, "size": list(size), "resize_mode": resize_mode, "color": color,
        "allow_partial": allow_partial, "context_frames": context_frames,
        "quantize": None if quantize is None else list(quantize), "feature_key": feature_key,
        "backend": backend,
    }
    channels = 1 if color == "gray" else 3
    if not feature_layer.built:
        feature_layer.build((None, None, size[0], size[1], channels))
    key = _cache_key(examples, labels, settings, feature_layer)
    out_dir = Path(out_dir)
    meta = cache.lookup(out_dir, key, key=key, layout=_LAYOUT)
    if meta is not None:
        # The files skipped when the cache was built are skipped again: say so again
        # (a resumed run's report and split.csv would otherwise miss them).
        bad = meta.get("bad_inputs", [])
        skipped = [e for e in bad if "kept_frames" not in e]
        if report.strict and skipped:
            raise BadMediaError(skipped[0]["path"], skipped[0]["reason"])
        report.extend(bad)
        return out_dir / key
    compute = _feature_function(feature_layer, channels)
    local_report = BadInputReport(strict=report.strict)

    def decoded_chunks():
        """("chunk", frames, source indices) items, then ("end", position) or ("drop", _).

        Frames stream through in chunks, so a long clip is never held whole.
        """
        for position, example in enumerate(examples):
            frames = iter_indexed_frames(
                example_path(example), fps=fps, size=size, resize_mode=resize_mode,
                color=color, max_frames=None, report=local_report, allow_partial=allow_partial,
                backend=backend,
            )
            try:
                for chunk, index in _chunks(frames, chunk_frames - context_frames):
                    yield "chunk", chunk, index
            except BadMediaError:
                if local_report.strict:
                    raise
                yield "drop", position, None  # recorded already (allow_partial=False)
                continue
            yield "end", position, None

    with cache.building(out_dir, key, key=key, layout=_LAYOUT) as build, progress(
        total=len(examples), description="video frame features", unit="clip"
    ) as bar:
        build.manifest = _write_shards(
            build.folder, _threaded(decoded_chunks()), compute, examples=examples, labels=labels,
            source_indices=source_indices, shards=shards, context_frames=context_frames, quantize=quantize,
            feature_key=feature_key, report=local_report, on_clip=bar.update,
        )
        build.manifest.update({
            "settings": settings,
            "layer": _layer_fingerprint(feature_layer)["config"],
            "class_names": class_names,
            "bad_inputs": local_report.entries,
        })
    report.extend(local_report)
    return out_dir / key


def _write_shards(folder: Path, items, compute, *, examples, labels, source_indices, shards, context_frames,
                  quantize, feature_key, report, on_clip=lambda n: None) -> dict:
    """Write the SequenceExamples of the decoded `items` into `folder`; the manifest's
    description of them (shards, clips, frame counts, feature size)."""
    import tensorflow as tf

    shard_names = [f"shard-{i:05d}-of-{shards:05d}.tfrecord" for i in range(shards)]
    writers = [tf.io.TFRecordWriter(os.fspath(folder / name)) for name in shard_names]
    clips_meta = []
    feature_dim = None
    try:
        outputs, indices_so_far, previous = [], [], None
        for kind, value, index in items:
            if kind != "chunk":
                on_clip(1)  # a clip ended (written or dropped)
            if kind == "chunk":
                frames = value
                if previous is not None and context_frames:
                    frames_in = np.concatenate([previous[-context_frames:], frames])
                    values = compute(frames_in[None]).numpy()[0, -len(frames):]
                else:
                    values = compute(frames[None]).numpy()[0]
                outputs.append(values)
                indices_so_far.append(index)
                previous = frames
                continue
            clip_outputs, clip_index_list = outputs, indices_so_far
            outputs, indices_so_far, previous = [], [], None
            if kind == "drop" or not clip_outputs:
                continue
            position = value
            example, label = examples[position], labels[position]
            path = example_path(example)
            features = np.concatenate(clip_outputs).astype(np.float32)
            source_index = np.concatenate(clip_index_list)
            feature_dim = features.shape[-1]
            sequence = tf.train.SequenceExample()
            context = sequence.context.feature
            context["id"].bytes_list.value.append(os.fspath(path).encode())
            if label >= 0:
                context["labels"].int64_list.value.append(label)
            context["clip_index"].int64_list.value.append(source_indices[position])
            context["targets"].float_list.value.extend(_clip_targets(example))
            frame_list = sequence.feature_lists.feature_list[feature_key].feature
            if quantize is None:
                for row in features:
                    frame_list.add().float_list.value.extend(row.tolist())
            else:
                for row in _quantize(features, *quantize):
                    frame_list.add().bytes_list.value.append(row)
            per_frame = _frame_targets_for(path, example, source_index, report)
            if per_frame is not None:
                target_list = sequence.feature_lists.feature_list["frame_targets"].feature
                for frame_target in per_frame:
                    target_list.add().float_list.value.append(float(frame_target))
            writers[len(clips_meta) % shards].write(sequence.SerializeToString())
            clips_meta.append(
                {"id": os.fspath(path), "clip_index": source_indices[position], "label": label,
                 "n_frames": len(features), "has_frame_targets": per_frame is not None}
            )
    finally:
        for writer in writers:
            writer.close()
    return {
        "feature_key": feature_key,
        "feature_dim": feature_dim,
        "quantize": None if quantize is None else list(quantize),
        "shards": shard_names,
        "n_clips": len(clips_meta),
        "n_frames": int(sum(c["n_frames"] for c in clips_meta)),
        "clips": clips_meta,
    }


def _frame_targets_for(path, example, source_index, report) -> np.ndarray | None:
    per_frame = load_frame_targets(path, frame_target_spec(example))
    if per_frame is None:
        return None
    if len(per_frame) <= int(source_index.max()):
        report.add(
            path,
            f"too few per-frame targets ({len(per_frame)} for {int(source_index.max()) + 1} frames); "
            "frame targets not cached",
            kept_frames=len(source_index),
        )
        return None
    return per_frame[source_index]
