"""Is seqapps.layers.Recurrent faster than keras.layers.SimpleRNN? Measured side by side.

For each size (batch, time steps, features, units) and each contender (Recurrent;
Recurrent with its compiled training kernels off, as on a machine without a compiler;
SimpleRNN; GRU as a reference) compiled twice (Keras compile defaults, and
jit_compile=True), the median time of
  (a) one training step of a compiled model (forward, backward, SGD update:
      model.train_on_batch), and
  (b) one forward-only inference call (model.predict_on_batch).
All contenders live in one process and are timed in alternation (round robin, with the
order rotated every repeat), after warm-up, so machine noise hits them alike.

Prints a table with the ratio Recurrent / SimpleRNN and writes bench_out/recurrent.json.

    PYTHONPATH=. .venv/bin/python benchmarks/recurrent.py            # full, < 10 min
    PYTHONPATH=. .venv/bin/python benchmarks/recurrent.py --quick    # fewer repeats
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seqapps.layers import Recurrent, native  # noqa: E402

# name: (batch, time steps, features, units)
SIZES: dict[str, tuple[int, int, int, int]] = {
    "audio": (64, 100, 64, 128),
    "video": (32, 32, 512, 256),
    "long": (16, 1000, 40, 64),
}
CONTENDERS: dict[str, Callable[[int], keras.layers.Layer]] = {
    "Recurrent": lambda units: Recurrent(units),
    # What a machine without a C++ compiler gets: the TF graph loops of seqapps.layers.bptt.
    "Recurrent(graph loops)": lambda units: Recurrent(units, implementation="graph"),
    "SimpleRNN": lambda units: keras.layers.SimpleRNN(units),
    "GRU": lambda units: keras.layers.GRU(units),
}
# Keras's own default is jit_compile="auto", which resolves to False on a CPU-only machine.
SETTINGS: dict[str, dict] = {"default": {}, "xla": {"jit_compile": True}}
TASKS = ("train", "infer")
OUTPUTS = 8


def build_model(make_layer, *, size, setting):
    """Input [batch, time, features] -> recurrent layer -> Dense(8), compiled with SGD + MSE."""
    batch, steps, features, units = size
    inputs = keras.Input((steps, features), batch_size=batch)
    outputs = keras.layers.Dense(OUTPUTS)(make_layer(units)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse", **setting)
    return model


def _task_fn(model, task, x, y):
    if task == "train":
        return lambda: model.train_on_batch(x, y)
    return lambda: model.predict_on_batch(x)


def _time_calls(fn, calls):
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def measure(
    *,
    sizes: dict[str, tuple[int, int, int, int]],
    contenders: dict[str, Callable[[int], keras.layers.Layer]],
    settings: dict[str, dict],
    repeats: int,
    sample_seconds: float,
    warmup: int = 3,
    log=print,
) -> dict:
    """Median seconds per call, {size: {task: {contender: {setting: {...}}}}}.

    Each sample is the mean of `calls` back-to-back calls, with `calls` chosen in warm-up
    so that a sample lasts about `sample_seconds`; the median is over `repeats` samples.
    """
    rng = np.random.default_rng(0)
    results: dict = {}
    for size_name, size in sizes.items():
        batch, steps, features, _ = size
        x = tf.constant(rng.standard_normal((batch, steps, features)).astype("float32"))
        y = tf.constant(rng.standard_normal((batch, OUTPUTS)).astype("float32"))
        fns, calls = {}, {}
        for name, make_layer in contenders.items():
            for setting_name, setting in settings.items():
                keras.utils.set_random_seed(0)
                model = build_model(make_layer, size=size, setting=setting)
                for task in TASKS:
                    key = (task, name, setting_name)
                    fns[key] = _task_fn(model, task, x, y)
                    start = time.perf_counter()
                    fns[key]()  # trace and compile
                    first = time.perf_counter() - start
                    once = min(_time_calls(fns[key], 1) for _ in range(warmup))
                    calls[key] = max(1, int(sample_seconds / max(once, 1e-6)))
                    log(f"  {size_name:6s} {task:5s} {name:10s} {setting_name:7s} "
                        f"first call {first:6.2f} s, then {once * 1e3:8.2f} ms")
        samples: dict = {key: [] for key in fns}
        keys = list(fns)
        for repeat in range(repeats):
            shift = repeat % len(keys)
            for key in keys[shift:] + keys[:shift]:  # rotate so no contender is always first
                samples[key].append(_time_calls(fns[key], calls[key]))
        size_result: dict = {task: {} for task in TASKS}
        for (task, name, setting_name), values in samples.items():
            size_result[task].setdefault(name, {})[setting_name] = {
                "median_ms": 1e3 * statistics.median(values),
                "min_ms": 1e3 * min(values),
                "max_ms": 1e3 * max(values),
                "calls_per_sample": calls[(task, name, setting_name)],
                "samples_ms": [1e3 * v for v in values],
            }
        results[size_name] = size_result
    return results


def ratios(results: dict, *, ours: str = "Recurrent", reference: str = "SimpleRNN") -> dict:
    """Recurrent (its default setting, and its best) over SimpleRNN in each setting."""
    out: dict = {}
    for size_name, size_result in results.items():
        for task, by_name in size_result.items():
            mine, theirs = by_name[ours], by_name[reference]
            best_setting = min(mine, key=lambda s: mine[s]["median_ms"])
            out.setdefault(size_name, {})[task] = {
                "ours_best_setting": best_setting,
                **{
                    f"default_over_{setting}": mine["default"]["median_ms"] / theirs[setting]["median_ms"]
                    for setting in theirs
                },
                **{
                    f"best_over_{setting}": mine[best_setting]["median_ms"] / theirs[setting]["median_ms"]
                    for setting in theirs
                },
            }
    return out


def format_table(results: dict, ratio_table: dict, *, contenders, settings) -> str:
    columns = [(name, setting) for name in contenders for setting in settings]
    header = ["size", "task"] + [f"{n} {s}" for n, s in columns] + [
        "R/S default", "R/S xla", "R best"
    ]
    rows = [header]
    for size_name, size_result in results.items():
        for task, by_name in size_result.items():
            r = ratio_table[size_name][task]
            rows.append(
                [size_name, task]
                + [f"{by_name[n][s]['median_ms']:.2f}" for n, s in columns]
                + [f"{r['default_over_default']:.2f}", f"{r['default_over_xla']:.2f}",
                   r["ours_best_setting"]]
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter repeats")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    parser.add_argument("--out", default="bench_out/recurrent.json")
    args = parser.parse_args(argv)
    repeats, sample_seconds = (5, 0.05) if args.quick else (21, 0.15)

    sizes = {name: SIZES[name] for name in args.sizes}
    # Recurrent's training steps run in compiled kernels when they could be built; say
    # which, since without them its train times are those of the TF graph loops.
    kernels = native.library_path() if native.load() is not None else None
    print(f"Recurrent training kernels: {kernels or 'not available (TF graph loops)'}")
    results = measure(sizes=sizes, contenders=CONTENDERS, settings=SETTINGS,
                      repeats=repeats, sample_seconds=sample_seconds)
    ratio_table = ratios(results)
    print("\nMedian milliseconds per call (train: one train_on_batch; infer: one predict_on_batch)")
    print("R/S = Recurrent with its default setting / SimpleRNN with compile defaults or XLA\n")
    print(format_table(results, ratio_table, contenders=CONTENDERS, settings=SETTINGS))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join(["python", sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
        "repeats": repeats,
        "sample_seconds": sample_seconds,
        "sizes": {name: dict(zip(("batch", "steps", "features", "units"), size, strict=True))
                  for name, size in sizes.items()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "tensorflow": tf.__version__, "keras": keras.__version__,
                    "load_average": os.getloadavg()},
        "recurrent_training_kernels": None if kernels is None else str(kernels),
        "median_ms": {s: {t: {n: {k: v["median_ms"] for k, v in by.items()} for n, by in r.items()}
                          for t, r in res.items()} for s, res in results.items()},
        "ratios": ratio_table,
        "details": results,
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
