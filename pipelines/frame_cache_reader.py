"""Reading the frame-feature cache back: manifest, SequenceExample parsing, windows in tf.data.

Reads what ``pipelines.frame_cache.write_frame_cache`` wrote (the YouTube-8M style
layout described there): ``read_frame_cache`` parses the records natively and cuts
windows in the graph (no Python per element); ``read_cached_clips`` gives whole clips.
Every name here is importable from ``pipelines.frame_cache`` too.

>>> ds = read_frame_cache("cache/frames-0123abcd", window_frames=16, hop_frames=8,
...                       batch_size=32)  # doctest: +SKIP
>>> inputs, labels = next(iter(ds))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.cache import MANIFEST, read_manifest  # read_manifest: re-exported
from seqapps.errors import ConfigError

__all__ = ["dequantize", "parse_clip", "read_cached_clips", "read_frame_cache", "read_manifest"]


def dequantize(values, low: float, high: float):
    """Inverse of the byte quantisation (YouTube-8M style): uint8 -> float in [low, high].

    >>> import numpy as np
    >>> float(dequantize(np.uint8(255), -2.0, 2.0))
    2.0
    """
    import tensorflow as tf

    return tf.cast(values, tf.float32) * ((high - low) / 255.0) + low


def _manifest_of(cache_dir: str | os.PathLike) -> dict:
    """The manifest of a cache folder written by ``write_frame_cache`` (read by the one
    ``pipelines.cache.read_manifest``); a folder without one is the caller's mistake."""
    manifest = read_manifest(cache_dir)
    if manifest is None:
        raise ConfigError(f"`cache_dir` must be a frame cache folder with a readable {MANIFEST}. "
                          f"Received: cache_dir={os.fspath(cache_dir)!r}")
    return manifest


def parse_clip(serialized, *, feature_key: str, feature_dim: int, quantize=None):
    """Parse one SequenceExample into a dict of tensors.

    Returns ``{"id": string [], "features": float32 [time, feature_dim], "label": int32 []
    (-1 when unlabelled), "clip_index": int64 [] (index in the source), "targets": float32 [k],
    "frame_targets": float32 [time] (empty when absent)}``.
    """
    import tensorflow as tf

    context_spec = {
        "id": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.VarLenFeature(tf.int64),
        "clip_index": tf.io.FixedLenFeature([], tf.int64),
        "targets": tf.io.VarLenFeature(tf.float32),
    }
    if quantize is None:
        frame_spec = tf.io.FixedLenSequenceFeature([feature_dim], tf.float32)
    else:
        frame_spec = tf.io.FixedLenSequenceFeature([], tf.string)
    sequence_spec = {
        feature_key: frame_spec,
        "frame_targets": tf.io.FixedLenSequenceFeature([], tf.float32, allow_missing=True),
    }
    context, sequence = tf.io.parse_single_sequence_example(
        serialized, context_features=context_spec, sequence_features=sequence_spec
    )
    features = sequence[feature_key]
    if quantize is not None:
        raw = tf.io.decode_raw(features, tf.uint8)
        features = tf.reshape(dequantize(raw, *quantize), [-1, feature_dim])
    labels = tf.sparse.to_dense(context["labels"])
    label = tf.cond(
        tf.size(labels) > 0, lambda: tf.cast(labels[0], tf.int32), lambda: tf.constant(-1)
    )
    return {
        "id": context["id"],
        "features": features,
        "label": label,
        "clip_index": context["clip_index"],
        "targets": tf.sparse.to_dense(context["targets"]),
        "frame_targets": sequence["frame_targets"],
    }


def read_frame_cache(
    cache_dir: str | os.PathLike,
    *,
    window_frames: int,
    hop_frames: int,
    batch_size: int = 8,
    target: str = "label",
    delay: int = 0,
    pad_end: bool = True,
    shuffle: bool = False,
    shuffle_buffer: int = 1024,
    seed: int = 0,
    with_clip_index: bool = False,
    repeat: bool = False,
    drop_remainder: bool = False,
):
    """Windows of cached frame features as a tf.data.Dataset (no Python per element).

    Yields ``({"inputs": float32 [batch, window_frames, d], "mask": bool [batch, window_frames]},
    labels)``, windows never crossing clips (``pipelines.windows.frame_windows``), with

    * ``target="label"``: labels int32 [batch] (the clip's class id);
    * ``target="clip_targets"``: labels float32 [batch, k] (the clip's targets);
    * ``target="frame"``: labels float32 [batch, window_frames] where frame n's target is
      y(n + delay), plus sample weights [batch, window_frames], 0 where the delayed target
      lies past the clip or on padding.

    ``with_clip_index`` adds ``"clip_index"`` int64 [batch] to the inputs (the clip's
    index in the source, as ``pipelines.audio.audio_dataset`` gives it) for
    ``aggregate_clip_predictions``.

    >>> ds = read_frame_cache(cache, window_frames=16, hop_frames=8, batch_size=32)  # doctest: +SKIP
    >>> inputs, labels = next(iter(ds))  # doctest: +SKIP
    """
    import tensorflow as tf

    from pipelines import windows as windowing

    windowing.check_window_arguments(window_frames=window_frames, hop_frames=hop_frames, batch_size=batch_size,
                                     target=target)
    manifest = _manifest_of(cache_dir)
    if target == "frame" and not all(c["has_frame_targets"] for c in manifest["clips"]):
        raise ConfigError(
            "`target` is 'frame' but some cached clips have no per-frame targets. "
            f"Received: target={target!r}"
        )
    files = [os.fspath(Path(cache_dir) / name) for name in manifest["shards"]]
    feature_dim = int(manifest["feature_dim"] or 0)
    quantize = manifest.get("quantize")

    def parse(serialized):
        return parse_clip(
            serialized,
            feature_key=manifest["feature_key"],
            feature_dim=feature_dim,
            quantize=None if quantize is None else tuple(quantize),
        )

    def windows_of_clip(clip):
        windows, mask = windowing.frame_windows(
            clip["features"], window=window_frames, hop=hop_frames, pad_end=pad_end
        )
        count = tf.shape(windows)[0]
        inputs = {"inputs": windows, "mask": mask}
        if with_clip_index:
            inputs["clip_index"] = tf.fill([count], clip["clip_index"])
        if target == "label":
            return inputs, tf.fill([count], clip["label"])
        if target == "clip_targets":
            return inputs, tf.tile(clip["targets"][None], [count, 1])
        targets, valid = windowing.window_targets(
            clip["frame_targets"], window=window_frames, hop=hop_frames, delay=delay, pad_end=pad_end
        )
        return inputs, targets, tf.cast(valid, tf.float32)

    dataset = tf.data.TFRecordDataset(files)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.map(windows_of_clip, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.unbatch()
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if not repeat:
        # The number of batches follows from the cached clip lengths; telling tf.data
        # lets Keras know the epoch length (no "ran out of data" warning, a progress bar).
        total = sum(windowing.n_windows(int(c["n_frames"]), window=window_frames, hop=hop_frames, pad_end=pad_end)
                    for c in manifest["clips"])
        batches = total // batch_size if drop_remainder else -(-total // batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(tf.data.AUTOTUNE)


def read_cached_clips(cache_dir: str | os.PathLike):
    """Whole cached clips as a tf.data.Dataset of ``parse_clip`` dicts (no windowing).

    >>> for clip in read_cached_clips(cache).take(1):  # doctest: +SKIP
    ...     clip["features"].shape
    """
    import tensorflow as tf

    manifest = _manifest_of(cache_dir)
    files = [os.fspath(Path(cache_dir) / name) for name in manifest["shards"]]
    quantize = manifest.get("quantize")
    return tf.data.TFRecordDataset(files).map(
        lambda s: parse_clip(
            s,
            feature_key=manifest["feature_key"],
            feature_dim=int(manifest["feature_dim"] or 0),
            quantize=None if quantize is None else tuple(quantize),
        )
    )
