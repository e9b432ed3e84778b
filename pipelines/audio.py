"""Audio at the edge: decode files in Python, cache the waveforms, feed windows to tf.data.

Only decoding runs in Python (soundfile / librosa: wav, flac, ogg, mp3; resampling with
``librosa.resample``; mixing to mono). Everything after it is tf.data and Keras layers.

- ``load_audio``: one file -> float32 waveform, or ``BadMediaError`` naming the file.
- ``decode_files``: many files in a thread or process pool; bad files go to a
  ``BadInputReport`` (skipped and reported, or an error in strict mode).
- ``build_cache`` / ``audio_dataset``: decoded waveforms are kept in TFRecord shards under
  ``cache_dir``, keyed by a hash of (paths, sizes, mtimes, decode settings), written to a
  temporary folder and renamed into place, so a killed run never leaves a cache that is
  later trusted; epochs after the first (and later runs) do no Python decoding.
- ``audio_dataset``: windows cut with ``pipelines.windows`` (never across
  clips), labels per window, seeded shuffle, batching, prefetch, optional features layer.

>>> from pipelines.audio import audio_dataset  # doctest: +SKIP
>>> ds = audio_dataset(source, splits["train"], sample_rate=16000, window_seconds=1.0,
...                    hop_seconds=0.5, batch_size=32, cache_dir="cache")  # doctest: +SKIP
>>> (x, y) = next(iter(ds)); x["inputs"].shape  # doctest: +SKIP
TensorShape([32, 16000])
"""

from __future__ import annotations

import concurrent.futures
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines import cache
from pipelines.report import BadInputReport
from seqapps.errors import BadMediaError, invalid_argument

__all__ = [
    "AUDIO_EXTENSIONS",
    "audio_dataset",
    "build_cache",
    "cache_key",
    "decode_files",
    "load_audio",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
CACHE_VERSION = 1  # bump when the record layout changes, so old caches are not trusted
_LAYOUT = ("audio-waveforms", CACHE_VERSION)  # the manifest's `layout` (pipelines.cache)
_RESAMPLE_TYPE = "soxr_hq"  # librosa.load's default
_SENTINEL_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}  # "unknown length" written by streaming encoders


# --------------------------------------------------------------------------- decoding


def _truncation(info) -> str | None:
    """libsndfile notes "data : DECLARED (should be ACTUAL)" when a WAV ends early."""
    for line in (info.extra_info or "").splitlines():
        words = line.replace(":", " ").replace("(", " ").replace(")", " ").split()
        if len(words) >= 5 and words[0] == "data" and words[2:4] == ["should", "be"]:
            try:
                declared, actual = int(words[1]), int(words[4])
            except ValueError:
                return None
            if declared not in _SENTINEL_SIZES and actual < declared:
                return f"truncated: header declares {declared} data bytes, file holds {actual}"
    return None


def _read(path: str) -> tuple[np.ndarray, int]:
    """-> ([channels, samples] float32, native sample rate); BadMediaError if undecodable."""
    import soundfile

    try:
        info = soundfile.info(path)
        data, native_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as sf_error:  # libsndfile cannot read it: try librosa's audioread path
        try:
            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data, native_rate = librosa.load(path, sr=None, mono=False, dtype=np.float32)
        except Exception:
            reason = str(sf_error).splitlines()[0] if str(sf_error) else type(sf_error).__name__
            raise BadMediaError(path, f"not decodable as audio ({reason})") from None
        return np.atleast_2d(data), int(native_rate)
    truncated = _truncation(info)
    if truncated:
        raise BadMediaError(path, truncated)
    return np.ascontiguousarray(data.T), int(native_rate)


def load_audio(path: str | os.PathLike, *, sample_rate: int, mono: bool = True) -> np.ndarray:
    """Decode one audio file to float32 at ``sample_rate``.

    Args:
        path: a wav, flac, ogg or mp3 file (anything libsndfile or audioread reads).
        sample_rate: target rate in Hz; other rates are resampled with
            ``librosa.resample(res_type="soxr_hq")`` (librosa.load's default).
        mono: average the channels (``librosa.to_mono``).

    Returns:
        ``[samples]`` float32 when ``mono`` else ``[channels, samples]``.

    Raises:
        BadMediaError: naming the file, when it is missing, empty, not audio, truncated,
            has no samples, or holds NaN/inf samples.

    Example:
    >>> y = load_audio("clip.wav", sample_rate=16000)  # doctest: +SKIP
    >>> y.dtype, y.ndim  # doctest: +SKIP
    (dtype('float32'), 1)
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise invalid_argument("sample_rate", sample_rate, "a positive integer")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BadMediaError(path, "file not found")
    if not os.path.isfile(path):
        raise BadMediaError(path, "not a file")
    if os.path.getsize(path) == 0:
        raise BadMediaError(path, "empty file (0 bytes)")
    data, native_rate = _read(path)
    if data.shape[-1] == 0:
        raise BadMediaError(path, "no audio samples")
    if not np.all(np.isfinite(data)):
        raise BadMediaError(path, "non-finite samples (NaN or inf)")
    import librosa

    if mono:
        data = librosa.to_mono(data) if data.shape[0] > 1 else data[0]
    if native_rate != sample_rate:
        data = librosa.resample(data, orig_sr=native_rate, target_sr=int(sample_rate), res_type=_RESAMPLE_TYPE)
    return np.ascontiguousarray(data, dtype=np.float32)


def _decode_one(path: str, sample_rate: int, mono: bool):
    # Runs in a worker: return the error reason instead of raising, so that one bad
    # file never cancels the others and the report is filled in the parent, in order.
    try:
        return load_audio(path, sample_rate=sample_rate, mono=mono), None
    except BadMediaError as error:
        return None, error.reason
    except Exception as error:  # any decoder crash is a bad file, not a lost run
        return None, f"decoding failed ({type(error).__name__}: {error})"


def decode_files(
    paths: Sequence[str | os.PathLike],
    *,
    sample_rate: int,
    mono: bool = True,
    report: BadInputReport | None = None,
    workers: int | None = None,
    executor: str = "thread",
) -> list[np.ndarray | None]:
    """Decode many files in parallel; bad files become ``None`` and a report entry.

    Args:
        paths: files to decode.
        sample_rate, mono: as ``load_audio``.
        report: where bad files go; ``None`` means strict, as everywhere in pipelines:
            the first bad file raises ``BadMediaError``. A strict report raises
            ``BadMediaError`` for the first bad file in path order.
        workers: pool size (default: CPU count).
        executor: ``"thread"`` (default: libsndfile and soxr release the GIL, and threads
            need no pickling; measured faster on 2 cores, see benchmarks/pipeline_audio.py),
            ``"process"``, or ``"serial"``.

    Returns:
        A list aligned with ``paths``: ``[samples]`` float32 arrays, ``None`` for bad files.

    Example:
    >>> waves = decode_files(["a.wav", "b.flac"], sample_rate=16000)  # doctest: +SKIP
    """
    if executor not in ("thread", "process", "serial"):
        raise invalid_argument("executor", executor, "'thread', 'process' or 'serial'")
    report = report if report is not None else BadInputReport(strict=True)
    paths = [os.fspath(p) for p in paths]
    workers = workers or os.cpu_count() or 1
    if executor == "serial" or workers == 1 or len(paths) <= 1:
        results = [_decode_one(p, sample_rate, mono) for p in paths]
    else:
        pool_type = (
            concurrent.futures.ThreadPoolExecutor
            if executor == "thread"
            else concurrent.futures.ProcessPoolExecutor
        )
        chunk = 1 if executor == "thread" else max(1, len(paths) // (4 * workers))
        with pool_type(max_workers=workers) as pool:
            results = list(
                pool.map(_decode_one, paths, [sample_rate] * len(paths), [mono] * len(paths), chunksize=chunk)
            )
    waveforms = []
    for path, (waveform, reason) in zip(paths, results, strict=True):
        if reason is not None:
            report.add(path, reason)
        waveforms.append(waveform)
    return waveforms


# --------------------------------------------------------------------------- cache


def _settings(sample_rate: int, mono: bool) -> dict:
    return {"version": CACHE_VERSION, "sample_rate": int(sample_rate), "mono": bool(mono), "resample": _RESAMPLE_TYPE}


def cache_key(paths: Sequence[str | os.PathLike], *, sample_rate: int, mono: bool = True) -> str:
    """Hash of (absolute paths, sizes, mtimes, decode settings): a new key when any changes.

    >>> cache_key([], sample_rate=16000) != cache_key([], sample_rate=8000)
    True
    """
    return cache.content_key(paths, settings=_settings(sample_rate, mono))


def build_cache(
    paths: Sequence[str | os.PathLike],
    *,
    cache_dir: str | os.PathLike,
    sample_rate: int,
    mono: bool = True,
    report: BadInputReport | None = None,
    workers: int | None = None,
    executor: str = "thread",
    shard_bytes: int = 64 << 20,
) -> tuple[Path, dict]:
    """Decode ``paths`` once into TFRecord shards under ``cache_dir``, or reuse them.

    The cache folder is ``cache_dir/audio-<cache_key>``, written with ``pipelines.cache``:
    under a temporary name, renamed into place only when complete (``manifest.json``
    written last), so a killed run leaves nothing that is trusted later. On a hit
    nothing is decoded; the bad files recorded at build time are added to ``report`` again
    (``None``: strict, the first bad file raises).

    Each record is a ``tf.train.Example`` with ``waveform`` (float32 bytes) and
    ``position`` (int64, the index into ``paths``).

    Returns:
        ``(folder, meta)``; ``meta`` has ``shards``, ``positions`` (kept files),
        ``lengths`` (samples per kept file), ``bad`` (report entries) and ``hit``.

    Example:
    >>> folder, meta = build_cache(paths, cache_dir="cache", sample_rate=16000)  # doctest: +SKIP
    """
    import tensorflow as tf

    report = report if report is not None else BadInputReport(strict=True)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(paths, sample_rate=sample_rate, mono=mono)
    name = f"audio-{key}"
    meta = cache.lookup(cache_dir, name, key=key, layout=_LAYOUT)
    if meta is not None:
        if report.strict and meta["bad"]:
            first = meta["bad"][0]
            raise BadMediaError(first["path"], first["reason"])
        report.extend(meta["bad"])
        return cache_dir / name, {**meta, "hit": True}

    # Decode into a private report so a strict caller still fails on the first bad file,
    # while the cache records every entry.
    local = BadInputReport(strict=report.strict)
    waveforms = decode_files(
        paths, sample_rate=sample_rate, mono=mono, report=local, workers=workers, executor=executor
    )
    with cache.building(cache_dir, name, key=key, layout=_LAYOUT) as build:
        tmp = build.folder
        shards, positions, lengths = [], [], []
        writer, written = None, 0
        try:
            for position, waveform in enumerate(waveforms):
                if waveform is None:
                    continue
                if writer is None or written >= shard_bytes:
                    if writer is not None:
                        writer.close()
                    shards.append(f"shard-{len(shards):05d}.tfrecord")
                    writer, written = tf.io.TFRecordWriter(str(tmp / shards[-1])), 0
                record = tf.train.Example(
                    features=tf.train.Features(
                        feature={
                            "waveform": tf.train.Feature(bytes_list=tf.train.BytesList(value=[waveform.tobytes()])),
                            "position": tf.train.Feature(int64_list=tf.train.Int64List(value=[position])),
                        }
                    )
                ).SerializeToString()
                writer.write(record)
                written += len(record)
                positions.append(position)
                lengths.append(int(waveform.shape[-1]))
        finally:
            if writer is not None:
                writer.close()
        build.manifest = {
            "settings": _settings(sample_rate, mono),
            "files": [os.fspath(p) for p in paths],
            "shards": shards,
            "positions": positions,
            "lengths": lengths,
            "bad": local.entries,
        }
    folder, meta = cache_dir / name, build.manifest
    report.extend(local.entries)
    return folder, {**meta, "hit": False}


# --------------------------------------------------------------------------- tf.data


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
    strict: bool = True,
    report_path: str | os.PathLike | None = None,
    features=None,
    with_clip_index: bool = False,
    sample_weights: str | None = None,
    group_clips: int | None = None,
    workers: int | None = None,
    executor: str = "thread",
    drop_remainder: bool = False,
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
        report: a ``BadInputReport`` to fill; ``None`` makes one with ``strict`` (default
            True: the first bad file raises ``BadMediaError``, as everywhere in pipelines;
            strict=False skips them); bad files are skipped, counted and printed; saved as JSON to ``report_path``
            (default ``cache_dir/bad_inputs-<key>.json`` when caching).
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

    Returns:
        ``tf.data.Dataset`` of ``({"inputs": [batch, window_samples] float32,
        "mask": [batch, window_samples] bool[, "clip_index": [batch]]}, labels[, weights])``
        with labels int32 ``[batch]`` (class ids) or float32 ``[batch, targets]``.

    Example:
    >>> ds = audio_dataset(source, split["train"], sample_rate=16000, window_seconds=1.0,
    ...                    hop_seconds=0.5, batch_size=32)  # doctest: +SKIP
    """
    import tensorflow as tf

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
    report = report if report is not None else BadInputReport(strict=strict)
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
        print(new.summary())
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
