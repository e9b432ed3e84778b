"""Audio at the edge: decode files in Python and cache the waveforms (tf.data: ``audio_dataset``).

Only decoding runs in Python (``pipelines.decode``: libsndfile or FFmpeg through PyAV,
chosen by each file's content; resampling with ``librosa.resample``; mixing to mono).
Everything after it is tf.data and Keras layers.

- ``load_audio``: one file -> float32 waveform, or ``BadMediaError`` naming the file.
- ``decode_files``: many files in a thread or process pool; bad files go to a
  ``BadInputReport`` (skipped and reported, or an error in strict mode).
- ``build_cache``: decoded waveforms are kept in TFRecord shards under
  ``cache_dir``, keyed by a hash of (paths, sizes, mtimes, decode settings), written to a
  temporary folder and renamed into place, so a killed run never leaves a cache that is
  later trusted; epochs after the first (and later runs) do no Python decoding.
- ``audio_dataset`` (in ``pipelines.audio_dataset``, importable from here too): windows
  cut with ``pipelines.windows`` (never across clips), labels per window, seeded shuffle,
  batching, prefetch, optional features layer.

>>> from pipelines.audio import audio_dataset  # doctest: +SKIP
>>> ds = audio_dataset(source, splits["train"], sample_rate=16000, window_seconds=1.0,
...                    hop_seconds=0.5, batch_size=32, cache_dir="cache")  # doctest: +SKIP
>>> (x, y) = next(iter(ds)); x["inputs"].shape  # doctest: +SKIP
TensorShape([32, 16000])
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines import cache
from pipelines.decode import decode_audio, take_unattributed_warnings
from pipelines.progress import progress
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

# What FFmpeg (PyAV) and libsndfile read; the content decides the decoder, not the name.
AUDIO_EXTENSIONS = (
    ".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".mp4", ".opus", ".webm", ".mka",
    ".wma", ".amr", ".3gp", ".aif", ".aiff", ".caf", ".au", ".mov", ".mkv",
)
# Bump when the record layout or the decoders change, so old caches are not trusted
# (2: FFmpeg decodes what libsndfile could not; a version-1 cache lists those as bad).
CACHE_VERSION = 2
_LAYOUT = ("audio-waveforms", CACHE_VERSION)  # the manifest's `layout` (pipelines.cache)
_RESAMPLE_TYPE = "soxr_hq"  # librosa.load's default


# --------------------------------------------------------------------------- decoding


def _load(path, *, sample_rate: int, mono: bool, decoder: str = "auto") -> tuple[np.ndarray, list[str]]:
    """(waveform, decoder warnings); the checks and conversions of ``load_audio``."""
    decoded = decode_audio(path, decoder=decoder)
    data, native_rate = decoded.data, decoded.sample_rate
    if data.shape[-1] == 0:
        raise BadMediaError(path, "no audio samples (zero samples decoded)")
    finite = np.isfinite(data)
    if not finite.all():
        first = int(np.argmin(finite.all(axis=0)))
        what = "NaN" if np.isnan(data[:, first]).any() else "infinite value"
        raise BadMediaError(path, f"non-finite samples: {what} at {first / native_rate:.3f} s")
    import librosa

    if mono:
        data = librosa.to_mono(data) if data.shape[0] > 1 else data[0]
    if native_rate != sample_rate:
        data = librosa.resample(data, orig_sr=native_rate, target_sr=int(sample_rate), res_type=_RESAMPLE_TYPE)
    return np.ascontiguousarray(data, dtype=np.float32), decoded.warnings


def load_audio(path: str | os.PathLike, *, sample_rate: int, mono: bool = True, decoder: str = "auto",
               notes: list[str] | None = None) -> np.ndarray:
    """Decode one audio file to float32 at ``sample_rate``.

    Args:
        path: any audio file (wav, flac, ogg, mp3, m4a/aac, opus, webm, wma, amr, ...) or
            a video with an audio track; the decoder is chosen by the file's content, not
            its name (``pipelines.decode``).
        sample_rate: target rate in Hz; other rates are resampled with
            ``librosa.resample(res_type="soxr_hq")`` (librosa.load's default).
        mono: average the channels (``librosa.to_mono``).
        decoder: ``"auto"``, ``"soundfile"`` or ``"pyav"`` (see ``decode_audio``).
        notes: when given, the decoder's warnings (FFmpeg's log) are appended to it.

    Returns:
        ``[samples]`` float32 when ``mono`` else ``[channels, samples]``.

    Raises:
        BadMediaError: naming the file and the true reason: not found, dangling link,
            not a file, permission denied, empty, unsupported codec, no audio stream,
            truncated, zero samples, NaN/inf samples.

    Example:
    >>> y = load_audio("clip.wav", sample_rate=16000)  # doctest: +SKIP
    >>> y.dtype, y.ndim  # doctest: +SKIP
    (dtype('float32'), 1)
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise invalid_argument("sample_rate", sample_rate, "a positive integer")
    waveform, warnings_logged = _load(os.fspath(path), sample_rate=sample_rate, mono=mono, decoder=decoder)
    if notes is not None:
        notes.extend(warnings_logged)
    return waveform


def _decode_one(path: str, sample_rate: int, mono: bool, decoder: str = "auto", catch_python_warnings: bool = False):
    # Runs in a worker: return the error reason instead of raising, so that one bad
    # file never cancels the others and the report is filled in the parent, in order.
    # Python warnings are caught per file only where that is safe (one file at a time in
    # this process); a thread pool catches them around the whole pool instead.
    context = warnings.catch_warnings(record=True) if catch_python_warnings else contextlib.nullcontext([])
    with context as caught:
        if catch_python_warnings:
            warnings.simplefilter("always")
        notes: list[str] = []
        try:
            waveform = load_audio(path, sample_rate=sample_rate, mono=mono, decoder=decoder, notes=notes)
            reason = None
        except BadMediaError as error:
            waveform, reason = None, error.reason
        except Exception as error:  # any decoder crash is a bad file, not a lost run
            waveform, reason = None, f"decoding failed ({type(error).__name__}: {error})"
    notes += [_warning_text(w) for w in caught]
    return waveform, reason, notes


def _warning_text(w) -> str:
    return f"{w.category.__name__}: {str(w.message).strip()} ({os.path.basename(w.filename)}:{w.lineno})"


def decode_files(
    paths: Sequence[str | os.PathLike],
    *,
    sample_rate: int,
    mono: bool = True,
    report: BadInputReport | None = None,
    workers: int | None = None,
    executor: str = "thread",
    decoder: str = "auto",
    show_progress: bool | None = None,
) -> list[np.ndarray | None]:
    """Decode many files in parallel; bad files become ``None`` and a report entry.

    Args:
        paths: files to decode.
        sample_rate, mono, decoder: as ``load_audio``.
        report: where bad files go; ``None`` means strict, as everywhere in pipelines:
            the first bad file raises ``BadMediaError``. A strict report raises
            ``BadMediaError`` for the first bad file in path order. Library warnings
            (FFmpeg's, Python ``warnings``) raised while decoding go to
            ``report.warnings`` instead of the terminal.
        workers: pool size (default: CPU count).
        executor: ``"thread"`` (default: libsndfile, FFmpeg and soxr release the GIL, and
            threads need no pickling; measured faster on 2 cores, see
            benchmarks/pipeline_audio.py), ``"process"``, or ``"serial"``.
        show_progress: a progress bar on a terminal, one line when not (default: when
            there are more than a few files; ``pipelines.progress``).

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
    serial = executor == "serial" or workers == 1 or len(paths) <= 1
    args = [sample_rate] * len(paths), [mono] * len(paths), [decoder] * len(paths)
    take_unattributed_warnings()  # only this call's leftovers go to this report
    with warnings.catch_warnings(record=True) as caught, progress(
        total=len(paths), description="decode audio", unit="file", enabled=show_progress
    ) as bar:
        warnings.simplefilter("always")
        if serial or executor == "thread":
            if serial:
                results_iter = map(_decode_one, paths, *args, [True] * len(paths))
            else:
                pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
                results_iter = pool.map(_decode_one, paths, *args)
        else:
            pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers)
            chunk = max(1, len(paths) // (4 * workers))
            results_iter = pool.map(_decode_one, paths, *args, [True] * len(paths), chunksize=chunk)
        try:
            results = []
            for result in results_iter:
                results.append(result)
                bar.update(1)
        finally:
            if not serial:
                pool.shutdown(wait=True, cancel_futures=True)
    waveforms = []
    for path, (waveform, reason, notes) in zip(paths, results, strict=True):
        for note in notes:
            report.warn(note, path=path)
        if reason is not None:
            report.add(path, reason)
        waveforms.append(waveform)
    for w in caught:
        report.warn(_warning_text(w))
    for note in take_unattributed_warnings():
        report.warn(note)
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
    report.extend(local)  # entries and the library warnings
    return folder, {**meta, "hit": False}

# audio_dataset lives in pipelines.audio_dataset; kept importable from here. Imported
# last because that module imports build_cache / decode_files from this one.
from pipelines.audio_dataset import audio_dataset  # noqa: E402
