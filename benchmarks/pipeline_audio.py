"""Audio pipeline throughput: WAV files -> batched log-mel windows, clips per second.

Measures, on one-second 16 kHz synthetic clips (written as real WAV files in a temp dir):

- decoding alone with a thread pool, a process pool and serially (``decode_files``);
- the first epoch with a cache (decode + write TFRecords + read + log-mel);
- cached epochs (TFRecords -> windows -> LogMelSpectrogram in tf.data, no Python);
- the same without a cache (decode into memory, then in-memory epochs);
- the reference: ``librosa.load`` + ``librosa.feature.melspectrogram`` per clip in a loop.

The real-time factor is seconds of audio processed per wall-clock second.

``--formats wav,flac,mp3,m4a,opus`` adds, per format, decoding alone with each decoder
that reads it (libsndfile, FFmpeg/PyAV; ``pipelines.decode``) and the first epoch with a
cache through the default choice. The files are written once per format (lossy ones with
PyAV's encoders). With ``PYTHONPATH`` on an older checkout (no ``decoder=`` argument) the
same script measures that checkout's path: that is how "before" is measured.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/pipeline_audio.py [--quick] [--clips N]
[--formats wav,flac,mp3,m4a,opus] [--skip-wav-stages]``
Writes ``bench_out/pipeline_audio.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


SAMPLE_RATE = 16000
SECONDS = 1.0
MEL = dict(sample_rate=SAMPLE_RATE, n_fft=512, hop_length=160, n_mels=64)


def _epoch(dataset) -> int:
    windows = 0
    for x, _ in dataset:
        windows += int(x["inputs"].shape[0])
    return windows


_CPU_SECONDS = []  # CPU time (user + system, all threads) of the last _timed call


def _cpu_now() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # process-pool workers
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def _timed(fn):
    cpu, start = _cpu_now(), time.perf_counter()
    result = fn()
    _CPU_SECONDS.append(_cpu_now() - cpu)
    return result, time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 clips, 1 cached epoch")
    parser.add_argument("--clips", type=int, default=None, help="number of clips (default 400)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="bench_out/pipeline_audio.json")
    parser.add_argument("--formats", default="", help="comma-separated: wav,flac,mp3,m4a,opus,ogg")
    parser.add_argument("--skip-wav-stages", action="store_true",
                        help="only the per-format rows (skip the WAV stage table)")
    args = parser.parse_args(argv)
    n_clips = args.clips or (100 if args.quick else 400)
    cached_epochs = 1 if args.quick else 3

    import librosa

    from pipelines.audio import audio_dataset, decode_files
    from pipelines.report import BadInputReport
    from pipelines.sources import from_manifest
    from pipelines.synthetic_audio import CLASS_NAMES, write_synthetic_audio
    from seqapps.layers.audio_frontends import LogMelSpectrogram

    results: dict = {
        "clips": n_clips,
        "clip_seconds": SECONDS,
        "sample_rate": SAMPLE_RATE,
        "window_seconds": 1.0,
        "batch_size": args.batch_size,
        "features": {"layer": "LogMelSpectrogram", **MEL},
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "rows": [],
    }

    def row(name, clips, seconds, note="", cpu_seconds=None):
        rate = clips / seconds
        cpu_seconds = _CPU_SECONDS[-1] if cpu_seconds is None else cpu_seconds
        results["rows"].append(
            {"stage": name, "clips": clips, "seconds": round(seconds, 4), "clips_per_s": round(rate, 1),
             "real_time_factor": round(rate * SECONDS, 1),
             "cpu_ms_per_clip": round(1000 * cpu_seconds / clips, 3), "note": note}
        )

    with tempfile.TemporaryDirectory() as tmp:
        per_class = -(-n_clips // len(CLASS_NAMES))
        root = write_synthetic_audio(Path(tmp) / "clips", n_per_class=per_class, sample_rate=SAMPLE_RATE,
                                     seconds=SECONDS, seed=0)
        source = from_manifest(root / "manifest.csv", task="classify")
        indices = list(range(n_clips))
        paths = [source.examples[i].path for i in indices]

        if args.formats:
            _format_rows(args.formats.split(","), source, indices, Path(tmp), row, results,
                         batch_size=args.batch_size)
        if args.skip_wav_stages:
            _print_and_save(results, args, n_clips, targets=False)
            return results

        for executor in ("thread", "process", "serial"):
            _, t = _timed(lambda ex=executor: decode_files(paths, sample_rate=SAMPLE_RATE, executor=ex,
                                                           report=BadInputReport()))
            row(f"decode only ({executor})", n_clips, t)

        features = LogMelSpectrogram(**MEL)
        common = dict(sample_rate=SAMPLE_RATE, window_seconds=1.0, hop_seconds=1.0,
                      batch_size=args.batch_size, features=features, seed=0)
        _epoch(audio_dataset(source, indices[: args.batch_size], **common))  # warm up TF/tracing

        cache = Path(tmp) / "cache"

        def first_epoch():
            ds = audio_dataset(source, indices, cache_dir=cache, **common)
            return ds, _epoch(ds)

        (ds, windows), t = _timed(first_epoch)
        assert windows == n_clips, windows
        row("first epoch, cached build (decode + write + log-mel)", n_clips, t)
        times = [_timed(lambda: _epoch(ds))[1] for _ in range(cached_epochs)]
        row("cached epoch (TFRecord -> log-mel), best", n_clips, min(times), f"{cached_epochs} epochs",
            cpu_seconds=min(_CPU_SECONDS[-cached_epochs:]))
        (ds_hit, _), t = _timed(first_epoch)
        row("new run on an existing cache (first epoch)", n_clips, t)

        def memory_first():
            ds = audio_dataset(source, indices, cache_dir=None, **common)
            return ds, _epoch(ds)

        (ds_mem, _), t = _timed(memory_first)
        row("first epoch, no cache (decode to memory + log-mel)", n_clips, t)
        times = [_timed(lambda: _epoch(ds_mem))[1] for _ in range(cached_epochs)]
        row("in-memory epoch, best", n_clips, min(times), cpu_seconds=min(_CPU_SECONDS[-cached_epochs:]))

        raw = audio_dataset(source, indices, cache_dir=cache, **{**common, "features": None})
        times = [_timed(lambda: _epoch(raw))[1] for _ in range(cached_epochs)]
        row("cached epoch, waveform windows only (no log-mel)", n_clips, min(times),
            cpu_seconds=min(_CPU_SECONDS[-cached_epochs:]))

        def reference():
            out = []
            for p in paths:
                y, _ = librosa.load(p, sr=SAMPLE_RATE)
                out.append(librosa.power_to_db(librosa.feature.melspectrogram(
                    y=y, sr=SAMPLE_RATE, n_fft=512, hop_length=160, n_mels=64), ref=1.0, top_db=80.0))
            return out

        # One BLAS thread: with the default pool, OpenBLAS threads spin against each
        # other on small matrices and librosa runs ~10x slower on this machine; the
        # reference should be librosa at its best.
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            _, t = _timed(reference)
            row("reference: librosa.load + melspectrogram loop", n_clips, t)
            waves = decode_files(paths, sample_rate=SAMPLE_RATE, report=BadInputReport())
            _, t = _timed(lambda: [librosa.feature.melspectrogram(y=w, sr=SAMPLE_RATE, n_fft=512, hop_length=160,
                                                                  n_mels=64) for w in waves])
            row("reference: librosa melspectrogram loop only (decoded)", n_clips, t)

    results["targets"] = {"cached_epoch_clips_per_s": 2000, "first_epoch_clips_per_s": 200}
    by_stage = {r["stage"]: r["clips_per_s"] for r in results["rows"]}
    results["meets_targets"] = {
        "cached": by_stage["cached epoch (TFRecord -> log-mel), best"] >= 2000,
        "first": by_stage["first epoch, cached build (decode + write + log-mel)"] >= 200,
    }

    _print_and_save(results, args, n_clips, targets=True)
    return results


# Lossy formats are written with PyAV's encoders (container format, codec, encoder rate).
_WRITERS = {"mp3": ("mp3", "libmp3lame", SAMPLE_RATE), "m4a": ("mp4", "aac", SAMPLE_RATE),
            "opus": ("ogg", "libopus", 48000)}


# What pipelines.decode.sniff_format calls each benchmark format.
_SNIFFED = {"wav": "wav", "flac": "flac", "ogg": "ogg-vorbis", "mp3": "mp3", "opus": "ogg-opus", "m4a": "mp4"}


def _write_clip(path: Path, waveform, fmt: str) -> None:
    import numpy as np

    if fmt not in _WRITERS:  # wav, flac, ogg (Vorbis): libsndfile writes them
        import soundfile

        soundfile.write(path, waveform, SAMPLE_RATE)
        return
    import av
    import librosa

    container_format, codec, rate = _WRITERS[fmt]
    if rate != SAMPLE_RATE:
        waveform = librosa.resample(waveform, orig_sr=SAMPLE_RATE, target_sr=rate)
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.asarray(waveform, np.float32)[None], format="flt", layout="mono")
        frame.rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


def _format_rows(formats, source, indices, tmp: Path, row, results, *, batch_size: int, repeats: int = 3) -> None:
    """Per format: decode alone with each decoder, then a cached first epoch; best of ``repeats``."""
    import inspect

    import soundfile

    from pipelines.audio import audio_dataset, decode_files
    from pipelines.report import BadInputReport
    from pipelines.sources import DataSource, Example
    from seqapps.layers.audio_frontends import LogMelSpectrogram

    has_decoder = "decoder" in inspect.signature(decode_files).parameters
    results["checkout"] = "with pipelines.decode" if has_decoder else "before pipelines.decode"
    results["format_rows"] = []
    originals = [source.examples[i] for i in indices]
    common = dict(sample_rate=SAMPLE_RATE, window_seconds=1.0, hop_seconds=1.0, batch_size=batch_size,
                  features=LogMelSpectrogram(**MEL), seed=0)
    for fmt in formats:
        folder = tmp / f"as-{fmt}"
        folder.mkdir()
        examples = []
        for k, e in enumerate(originals):
            waveform, _ = soundfile.read(e.path, dtype="float32")
            path = folder / f"{k:05d}.{fmt}"
            _write_clip(path, waveform, fmt)
            examples.append(Example(str(path), e.label, None, None, None))
        converted = DataSource(examples, source.class_names, None, "classify")
        paths = [e.path for e in examples]
        warm = DataSource(examples[:batch_size], source.class_names, None, "classify")
        for _ in audio_dataset(warm, None, cache_dir=None, report=BadInputReport(), **common):
            pass  # TF tracing and first imports, outside the timings
        for decoder in (("soundfile", "pyav", "auto") if has_decoder else ("today",)):
            kwargs = {"decoder": decoder, "show_progress": False} if has_decoder else {}
            timings = []
            for _ in range(repeats):
                report = BadInputReport()
                timings.append(_timed(lambda kw=kwargs, r=report, p=paths: decode_files(
                    p, sample_rate=SAMPLE_RATE, report=r, **kw))[1])
            t = min(timings)
            _CPU_SECONDS.append(min(_CPU_SECONDS[-repeats:]))
            ok = len(paths) - report.count
            row(f"{fmt}: decode only, {decoder}", len(paths), t, note=f"{ok} of {len(paths)} decoded, best of {repeats}")
            results["format_rows"].append({"format": fmt, "stage": "decode", "decoder": decoder,
                                           "decoded": ok, **results["rows"][-1]})
        def first_epoch(data=converted, c=None, r=None):
            windows = 0
            for x, _ in audio_dataset(data, None, cache_dir=c, report=r, **common):
                windows += int(x["inputs"].shape[0])
            return windows

        # With pipelines.decode, route the format to each decoder in turn (the choice is a
        # set of sniffed kinds), to see which first epoch is faster; "today" otherwise.
        routes = ["today"]
        if has_decoder:
            import pipelines.decode as decode_module

            routes = ["soundfile", "pyav"] if fmt in _SNIFFED and fmt != "m4a" else ["pyav"]
        for route in routes:
            if has_decoder:
                chosen = set(decode_module._SOUNDFILE_FORMATS)
                (chosen.add if route == "soundfile" else chosen.discard)(_SNIFFED[fmt])
                saved, decode_module._SOUNDFILE_FORMATS = decode_module._SOUNDFILE_FORMATS, chosen
                default = _SNIFFED[fmt] in saved
            timings = []
            try:
                for attempt in range(repeats):  # a new cache folder each time: every attempt decodes
                    report = BadInputReport()
                    windows, seconds = _timed(lambda a=attempt, r=report, f=f"{fmt}-{route}": first_epoch(
                        c=tmp / f"cache-{f}-{a}", r=r))
                    timings.append(seconds)
            finally:
                if has_decoder:
                    decode_module._SOUNDFILE_FORMATS = saved
            t = min(timings)
            _CPU_SECONDS.append(min(_CPU_SECONDS[-repeats:]))
            label = route if not has_decoder else f"{route}{' (default)' if (route == 'soundfile') == default else ''}"
            row(f"{fmt}: first epoch, cached build, {label}", len(paths), t,
                note=f"{windows} windows, {report.count} skipped, best of {repeats}")
            results["format_rows"].append({"format": fmt, "stage": "first_epoch", "decoder": route,
                                           "skipped": report.count, **results["rows"][-1]})


def _print_and_save(results, args, n_clips, *, targets: bool) -> None:
    results["load_average_1min"] = os.getloadavg()[0]
    width = max(len(r["stage"]) for r in results["rows"])
    print(f"\n{n_clips} one-second clips at {SAMPLE_RATE} Hz -> batched log-mel windows "
          f"(batch {args.batch_size}, {os.cpu_count()} CPUs)")
    print(f"{'stage':<{width}}  {'seconds':>8}  {'clips/s':>9}  {'x real time':>11}  {'CPU ms/clip':>11}  note")
    for r in results["rows"]:
        print(f"{r['stage']:<{width}}  {r['seconds']:>8.3f}  {r['clips_per_s']:>9.1f}  "
              f"{r['real_time_factor']:>11.1f}  {r['cpu_ms_per_clip']:>11.3f}  {r['note']}")
    print(f"load average during the run: {results['load_average_1min']:.1f} on {os.cpu_count()} CPUs "
          "(wall-clock rates drop when other jobs share the CPUs; CPU ms/clip does much less)")
    if targets:
        print(f"targets: cached >= 2000 clips/s: {results['meets_targets']['cached']}; "
              f"first epoch >= 200 clips/s: {results['meets_targets']['first']}")
    from seqapps.atomic import write_text

    out = Path(args.out)
    write_text(out, json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
