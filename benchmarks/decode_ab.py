"""Before/after decode throughput in one process, runs interleaved: is today's WAV/FLAC path kept?

The machine is shared, so two benchmark runs minutes apart see different loads. This
script loads the "before" ``pipelines/audio.py`` from another checkout (``--before``, e.g.
the main branch before pipelines.decode) next to this checkout's, and alternates them
run by run on the same files: decoding alone (``decode_files``, thread pool) and the first
epoch with a cache (decode + TFRecord write + log-mel, a new cache folder every run).
It prints the best and the median of each, and after/before ratios, in wall-clock
clips/s and in CPU ms per clip (user + system of this process, all threads): on a shared
machine the CPU time moves much less with the load than the wall-clock time.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/decode_ab.py --before ../main [--clips 200] [--rounds 5]``
Writes ``bench_out/decode_ab.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SEQAPPS_PROGRESS", "0")

SAMPLE_RATE = 16000
MEL = dict(sample_rate=SAMPLE_RATE, n_fft=512, hop_length=160, n_mels=64)


def _cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load_before(checkout: Path):
    """The other checkout's pipelines/audio.py as a module of its own (it shares the rest)."""
    spec = importlib.util.spec_from_file_location("before_audio", checkout / "pipelines" / "audio.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="checkout whose pipelines/audio.py is 'before'")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--formats", default="wav,flac")
    parser.add_argument("--out", default="bench_out/decode_ab.json")
    args = parser.parse_args(argv)

    import numpy as np
    import soundfile

    import pipelines.audio as after
    from pipelines.report import BadInputReport
    from pipelines.sources import DataSource, Example
    from seqapps.layers.audio_frontends import LogMelSpectrogram

    before = _load_before(Path(args.before).resolve())
    implementations = {"before": before, "after": after}
    features = LogMelSpectrogram(**MEL)
    common = dict(sample_rate=SAMPLE_RATE, window_seconds=1.0, hop_seconds=1.0, batch_size=64,
                  features=features, seed=0)
    results = {"clips": args.clips, "rounds": args.rounds, "before": str(Path(args.before).resolve()), "rows": []}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for fmt in args.formats.split(","):
            paths = []
            for k in range(args.clips):
                t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
                y = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + 0.05 * rng.normal(size=SAMPLE_RATE)
                paths.append(tmp / fmt / f"{k:05d}.{fmt}")
                paths[-1].parent.mkdir(exist_ok=True)
                soundfile.write(paths[-1], y.astype(np.float32), SAMPLE_RATE)
            source = DataSource([Example(str(p), "a" if k % 2 else "b", None, None, None)
                                 for k, p in enumerate(paths)], ["a", "b"], None, "classify")
            for module in implementations.values():  # warm up: imports, TF tracing
                for _ in module.audio_dataset(source, list(range(64)), cache_dir=None, report=BadInputReport(),
                                              **common):
                    pass
            timings = {(name, stage): [] for name in implementations for stage in ("decode", "first_epoch")}
            cpu = {key: [] for key in timings}
            for round_ in range(args.rounds):
                order = list(implementations.items())
                if round_ % 2:
                    order.reverse()  # neither always runs first
                for name, module in order:
                    start, cpu_start = time.perf_counter(), _cpu()
                    module.decode_files(paths, sample_rate=SAMPLE_RATE, report=BadInputReport())
                    timings[(name, "decode")].append(time.perf_counter() - start)
                    cpu[(name, "decode")].append(_cpu() - cpu_start)
                    start, cpu_start = time.perf_counter(), _cpu()
                    for _ in module.audio_dataset(source, None, cache_dir=tmp / f"cache-{fmt}-{name}-{round_}",
                                                  report=BadInputReport(), **common):
                        pass
                    timings[(name, "first_epoch")].append(time.perf_counter() - start)
                    cpu[(name, "first_epoch")].append(_cpu() - cpu_start)
            for stage in ("decode", "first_epoch"):
                row = {"format": fmt, "stage": stage}
                for name in implementations:
                    values = timings[(name, stage)]
                    row[f"{name}_best_clips_per_s"] = round(args.clips / min(values), 1)
                    row[f"{name}_median_clips_per_s"] = round(args.clips / statistics.median(values), 1)
                    row[f"{name}_median_cpu_ms_per_clip"] = round(
                        1000 * statistics.median(cpu[(name, stage)]) / args.clips, 3)
                row["after_over_before_best"] = round(row["after_best_clips_per_s"] / row["before_best_clips_per_s"], 3)
                row["after_over_before_median"] = round(
                    row["after_median_clips_per_s"] / row["before_median_clips_per_s"], 3)
                row["cpu_after_over_before"] = round(
                    row["after_median_cpu_ms_per_clip"] / row["before_median_cpu_ms_per_clip"], 3)
                results["rows"].append(row)
    results["load_average_1min"] = os.getloadavg()[0]
    print(f"\n{args.clips} one-second {SAMPLE_RATE} Hz clips, {args.rounds} interleaved rounds "
          f"(load {results['load_average_1min']:.1f} on {os.cpu_count()} CPUs); clips/s")
    print(f"{'format':<6} {'stage':<12} {'before best':>11} {'after best':>10} {'ratio':>6}   "
          f"{'before med':>10} {'after med':>9} {'ratio':>6}   {'CPU ms/clip before':>18} {'after':>6} {'ratio':>6}")
    for r in results["rows"]:
        print(f"{r['format']:<6} {r['stage']:<12} {r['before_best_clips_per_s']:>11.1f} "
              f"{r['after_best_clips_per_s']:>10.1f} {r['after_over_before_best']:>6.3f}   "
              f"{r['before_median_clips_per_s']:>10.1f} {r['after_median_clips_per_s']:>9.1f} "
              f"{r['after_over_before_median']:>6.3f}   {r['before_median_cpu_ms_per_clip']:>18.3f} "
              f"{r['after_median_cpu_ms_per_clip']:>6.3f} {r['cpu_after_over_before']:>6.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
