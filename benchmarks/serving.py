"""How fast is the exported SavedModel (what TF Serving runs) on this CPU?

A realistic audio model (LogMelSpectrogram 16 kHz with 40 mel bands, one Recurrent layer
of 128 units, 12 classes; untrained: the weights do not change the time) is exported
with seqapps.export and loaded back with tf.saved_model.load. Timed, after warm-up:

  clip  b1    serving_default on one one-second clip (16000 samples)
  clip  b32   serving_default on 32 one-second clips
  stream b1   the stream signature on a 10-frame chunk (carrying the state)

Beside each, the in-process Keras model on the same input: model.predict_on_batch for
clips (Keras's compiled predict), and model.stream wrapped in one tf.function for the
stream step. The calls are interleaved (loaded, Keras, loaded, ...) so machine noise
hits both alike. Latency per call in ms, p50 and p99. Targets: clip b1 p50 <= 10 ms,
stream step p50 <= 2 ms.

    PYTHONPATH=. .venv/bin/python benchmarks/serving.py            # ~20 s
    PYTHONPATH=. .venv/bin/python benchmarks/serving.py --quick    # fewer repeats

Writes bench_out/serving.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seqapps.export import export_model, load_exported  # noqa: E402
from seqapps.layers.audio_frontends import LogMelSpectrogram  # noqa: E402
from seqapps.tasks import SequenceClassifier  # noqa: E402

SAMPLE_RATE = 16000
PREPROCESSING = {"kind": "audio", "sample_rate": SAMPLE_RATE, "window_samples": SAMPLE_RATE,
                 "hop_samples": SAMPLE_RATE // 2}
TARGETS_MS = {"clip_b1": 10.0, "stream_b1": 2.0}
CHUNK_FRAMES = 10


def build_model() -> SequenceClassifier:
    frontend = LogMelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=512, hop_length=160, n_mels=40)
    return SequenceClassifier(num_classes=12, input_shape=(SAMPLE_RATE,), frontend=frontend,
                              units=128, num_layers=1, dropout=0.1)


def percentiles(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "calls": len(ms)}


def time_pair(loaded_call, keras_call, *, repeats: int, warmup: int = 5) -> dict:
    """Interleaved timings of two zero-argument callables that return NumPy results."""
    for _ in range(warmup):
        loaded_call()
        keras_call()
    times = {"saved_model": [], "keras": []}
    for _ in range(repeats):
        for key, call in (("saved_model", loaded_call), ("keras", keras_call)):
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    return {key: percentiles(values) for key, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--out", default="bench_out/serving.json")
    args = parser.parse_args(argv)
    repeats = {"clip_b1": 40, "clip_b32": 10, "stream_b1": 60} if args.quick else \
        {"clip_b1": 300, "clip_b32": 40, "stream_b1": 500}

    keras.utils.set_random_seed(0)
    model = build_model()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as base:
        started = time.perf_counter()
        path = export_model(model, base_dir=base, name="speech", preprocessing=PREPROCESSING)
        export_seconds = time.perf_counter() - started
        loaded = load_exported(path)
        serving = loaded.signatures["serving_default"]
        stream = loaded.signatures["stream"]

        results = {}
        for key, batch in (("clip_b1", 1), ("clip_b32", 32)):
            clips = tf.constant((0.1 * rng.standard_normal((batch, SAMPLE_RATE))).astype("float32"))
            results[key] = time_pair(
                lambda clips=clips: serving(waveform=clips)["probabilities"].numpy(),
                lambda clips=clips: model.predict_on_batch({"inputs": clips}),
                repeats=repeats[key],
            )
        chunk = tf.constant(rng.standard_normal((1, CHUNK_FRAMES, model.feature_size)).astype("float32"))
        state = tf.zeros((1, model.num_layers, model.units))
        reset = tf.constant([False])
        keras_stream = tf.function(model.stream)
        results["stream_b1"] = time_pair(
            lambda: stream(features=chunk, state=state, reset=reset)["state"].numpy(),
            lambda: keras_stream(chunk, state, reset)[1].numpy(),
            repeats=repeats["stream_b1"],
        )

    print(f"Exported SavedModel vs in-process Keras (LogMel 40 + Recurrent 128), "
          f"{os.cpu_count()} CPUs, export {export_seconds:.1f} s")
    print(f"{'case':<12}{'SavedModel p50':>16}{'p99':>9}{'Keras p50':>12}{'p99':>9}{'target p50':>12}")
    for key, result in results.items():
        target = TARGETS_MS.get(key)
        met = "" if target is None else (" ok" if result["saved_model"]["p50_ms"] <= target else " MISSED")
        print(f"{key:<12}{result['saved_model']['p50_ms']:>14.2f}ms{result['saved_model']['p99_ms']:>7.2f}ms"
              f"{result['keras']['p50_ms']:>10.2f}ms{result['keras']['p99_ms']:>7.2f}ms"
              f"{'' if target is None else f'{target:>10.1f}ms'}{met}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "model": {"frontend": "LogMelSpectrogram(16 kHz, n_fft 512, hop 160, n_mels 40)",
                  "units": 128, "num_layers": 1, "classes": 12},
        "chunk_frames": CHUNK_FRAMES,
        "targets_p50_ms": TARGETS_MS,
        "results": results,
        "export_seconds": export_seconds,
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0], "tensorflow": tf.__version__},
    }, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
