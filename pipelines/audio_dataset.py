"""tf.data for audio: windows of cached (or in-memory) decoded clips, batched for ``Model.fit``.

Decoding and the waveform cache live in ``pipelines.audio`` (``decode_files``,
``build_cache``); this module cuts windows with ``pipelines.windows`` (never across
clips), gives labels per window, shuffles with a seed, batches, prefetches and maps an
optional features layer. ``pipelines.audio.audio_dataset`` is the same function.

>>> from pipelines.audio_dataset import audio_dataset  # doctest: +SKIP
>>> ds = audio_dataset(source, splits["train"], sample_rate=16000, window_seconds=1.0,
...                    hop_seconds=0.5, batch_size=32, cache_dir="cache")  # doctest: +SKIP
>>> (x, y) = next(iter(ds)); x["inputs"].shape  # doctest: +SKIP
TensorShape([32, 16000])
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines.report import BadInputReport
from seqapps.errors import invalid_argument

__all__ = ["audio_dataset"]


def _labels_for(source, indices: np.ndarray):
    if getattr(source, "task", "classify") in ("regress", "regression"):
        targets = np.asarray(source.targets_array(), dtype=np.float32)
        return targets[indices]
    return np.asarray(source.labels_as_ids(), dtype=np.int32)[indices]


def audio_dataset(
    source,
    indices: Sequence[int] | None = None,
    *,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    report: BadInputReport | None = None,
    report_path: str | os.PathLike | None = None,
    features=None,
    with_clip_index: bool = False,
    sample_weights: str | None = None,
    group_clips: int | None = None,
    workers: int | None = None,
    executor: str = "thread",
    drop_remainder: bool = False,
    print_summary: bool = True,
):
    """Windows of decoded clips as a batched ``tf.data.Dataset`` ready for ``Model.fit``.

    Args:
        source: a ``pipelines.sources.DataSource`` (``.examples[i].path``, ``.task``,
            ``.labels_as_ids()`` / ``.targets_array()``).
        indices: which examples (e.g. ``split_examples(...)["train"]``); default all.
        sample_rate: decode rate in Hz.
        window_seconds, hop_seconds: window length and shift; windows never cross clips
            and the last one of a clip is zero-padded (masked) to full length.
        batch_size: windows per batch.
        shuffle, seed: seeded shuffling: clip order, then windows within each group of
            ``group_clips`` consecutive clips (default ``max(batch_size, 64)``), so a
            batch mixes windows of many clips; every epoch reshuffles, reproducibly.
        cache_dir: keep decoded waveforms in TFRecord shards there (see ``build_cache``);
            ``None`` decodes into memory each time this function is called.
        report: where bad files go. ``None`` means strict, as everywhere in pipelines:
            the first bad file raises ``BadMediaError``. With a lenient
            ``BadInputReport()`` bad files are skipped, counted, printed and saved as JSON
            to ``report_path`` (default ``cache_dir/bad_inputs-<key>.json`` when caching).
        features: a Keras layer mapped over batches (e.g. ``LogMelSpectrogram``), called
            with the sample mask; ``inputs`` then holds its output and ``mask`` its
            ``compute_mask`` (frame mask).
        with_clip_index: add ``clip_index`` (int64 ``[batch]``, the example index in
            ``source``) to the inputs dict, for clip-level aggregation; with
            ``shuffle=False`` windows come clip by clip in order.
        sample_weights: ``None`` or ``"per_clip"`` (each window weighs
            ``1 / windows in its clip``, so every clip counts the same).
        workers, executor: decoding pool (see ``decode_files``).
        drop_remainder: drop the last partial batch.
        print_summary: print the bad files of this call (False when the caller prints one
            summary for a whole run).

    Returns:
        ``tf.data.Dataset`` of ``({"inputs": [batch, window_samples] float32,
        "mask": [batch, window_samples] bool[, "clip_index": [batch]]}, labels[, weights])``
        with labels int32 ``[batch]`` (class ids) or float32 ``[batch, targets]``.

    Example:
    >>> ds = audio_dataset(source, split["train"], sample_rate=16000, window_seconds=1.0,
    ...                    hop_seconds=0.5, batch_size=32)  # doctest: +SKIP
    """
    import tensorflow as tf

    # Here, not at the top: pipelines.audio re-exports this function (import cycle).
    from pipelines.audio import build_cache, decode_files
    from pipelines.windows import n_windows
    from pipelines.windows import windows_of_packed_clips as packed_windows

    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise invalid_argument("sample_rate", sample_rate, "a positive integer")
    if not window_seconds or window_seconds <= 0:
        raise invalid_argument("window_seconds", window_seconds, "a positive number of seconds")
    if not hop_seconds or hop_seconds <= 0:
        raise invalid_argument("hop_seconds", hop_seconds, "a positive number of seconds")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise invalid_argument("batch_size", batch_size, "a positive integer")
    if sample_weights not in (None, "per_clip"):
        raise invalid_argument("sample_weights", sample_weights, "None or 'per_clip'")
    window = int(round(window_seconds * sample_rate))
    hop = int(round(hop_seconds * sample_rate))
    if window <= 0 or hop <= 0:
        raise invalid_argument("window_seconds", window_seconds, "at least one sample long")

    indices = np.arange(len(source.examples)) if indices is None else np.asarray(indices, dtype=np.int64)
    paths = [source.examples[int(i)].path for i in indices]
    labels = _labels_for(source, indices)
    report = report if report is not None else BadInputReport(strict=True)
    before = report.count

    if cache_dir is not None:
        folder, meta = build_cache(
            paths, cache_dir=cache_dir, sample_rate=sample_rate, report=report, workers=workers, executor=executor
        )
        shard_files = [str(folder / s) for s in meta["shards"]]
        if report_path is None and meta["bad"]:
            report_path = Path(cache_dir) / f"bad_inputs-{meta['key']}.json"
        n_clips = len(meta["positions"])
        lengths = meta["lengths"]
        spec = {
            "waveform": tf.io.FixedLenFeature([], tf.string),
            "position": tf.io.FixedLenFeature([], tf.int64),
        }

        def unpack(records):
            # A group of records at once: joining the float32 byte strings packs the clips
            # end to end without padding them to the longest one.
            parsed = tf.io.parse_example(records, spec)
            flat = tf.io.decode_raw(tf.strings.reduce_join(parsed["waveform"]), tf.float32)
            return flat, tf.strings.length(parsed["waveform"]) // 4, parsed["position"]

        if shuffle and len(shard_files) > 1:
            files = tf.data.Dataset.from_tensor_slices(shard_files).shuffle(len(shard_files), seed=seed)
            clips = files.interleave(
                tf.data.TFRecordDataset, cycle_length=min(4, len(shard_files)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
            )
        else:
            clips = tf.data.TFRecordDataset(shard_files)
        if shuffle:
            clips = clips.shuffle(min(n_clips, 512) or 1, seed=seed)
        unpack_group = unpack
    else:
        waveforms = decode_files(paths, sample_rate=sample_rate, report=report, workers=workers, executor=executor)
        kept = [p for p, w in enumerate(waveforms) if w is not None]
        lengths = [waveforms[p].shape[-1] for p in kept]
        flat = np.concatenate([waveforms[p] for p in kept]) if kept else np.zeros(0, np.float32)
        ragged = tf.RaggedTensor.from_row_lengths(flat, np.asarray(lengths, np.int64))
        clips = tf.data.Dataset.from_tensor_slices((ragged, np.asarray(kept, np.int64)))
        if shuffle:
            clips = clips.shuffle(max(1, len(kept)), seed=seed)

        def unpack_group(waveforms, positions):
            return waveforms.flat_values, waveforms.row_lengths(), positions

    if report.count > before:
        new = BadInputReport(entries=report.entries[before:])
        if print_summary:  # off when the caller summarises a whole run once (seqapps.cli)
            print(new.summary(), file=sys.stderr)  # stdout stays for machine-readable output
        if report_path is not None:
            new.save(report_path)

    labels_table = tf.constant(labels)
    clip_ids = tf.constant(indices, tf.int64)

    def to_windows(*group):
        flat, lengths, positions = unpack_group(*group)
        windows, mask, clip_of_window = packed_windows(flat, lengths, window=window, hop=hop)
        position = tf.gather(positions, clip_of_window)
        inputs = {"inputs": tf.ensure_shape(windows, [None, window]), "mask": tf.ensure_shape(mask, [None, window])}
        if with_clip_index:
            inputs["clip_index"] = tf.gather(clip_ids, position)
        target = tf.gather(labels_table, position)
        if sample_weights == "per_clip":
            per_clip = tf.math.bincount(clip_of_window, minlength=tf.size(lengths), dtype=tf.float32)
            return inputs, target, 1.0 / tf.gather(per_clip, clip_of_window)
        return inputs, target

    # Windows are cut per group of clips in one vectorised step, never clip by clip or
    # window by window: per-element tf.data work (unbatch, shuffle buffer, batch) cost
    # more than the log-mel itself (benchmarks/pipeline_audio.py). Shuffling = clip order
    # (above) + a seeded permutation of the windows inside each group of `group_clips`.
    group = int(group_clips or max(batch_size, 64))
    grouped = clips.batch(group) if cache_dir is not None else clips.ragged_batch(group)
    windows = grouped.map(to_windows, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:

        def permute(group_seed, parts):
            count = tf.shape(tf.nest.flatten(parts)[0])[0]
            order = tf.random.experimental.stateless_shuffle(tf.range(count), seed=group_seed)
            return tf.nest.map_structure(lambda t: tf.gather(t, order), parts)

        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        windows = tf.data.Dataset.zip(seeds, windows).map(permute, num_parallel_calls=tf.data.AUTOTUNE)
    batches = windows.rebatch(batch_size, drop_remainder=drop_remainder)
    # The number of batches is known from the decoded lengths; telling tf.data lets Keras
    # show progress and know the epoch length (no "ran out of data" warning).
    total = sum(n_windows(int(n), window=window, hop=hop) for n in lengths)
    batches = batches.apply(
        tf.data.experimental.assert_cardinality(total // batch_size if drop_remainder else -(-total // batch_size))
    )
    if features is not None:
        batches = batches.map(_features_mapper(features), num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def _features_mapper(layer):
    import tensorflow as tf

    def apply(inputs, *rest):
        waveform, mask = inputs["inputs"], inputs["mask"]
        outputs = layer(waveform, mask=mask)
        frame_mask = layer.compute_mask(waveform, mask)
        if frame_mask is None:
            frame_mask = tf.ones(tf.shape(outputs)[:2], tf.bool)
        mapped = {**inputs, "inputs": outputs, "mask": frame_mask}
        return (mapped, *rest)

    return apply
