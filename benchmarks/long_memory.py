"""Long memory: the adding problem for Recurrent with and without remedies, LSTM and GRU.

The adding problem (Hochreiter and Schmidhuber 1997; Le, Jaitly and Hinton 2015): each
step carries a value in [0, 1) and a marker; exactly two steps are marked, one in each
half of the sequence, and the target is the sum of the two marked values. Predicting 1
whatever the input gives MSE 1/6 = 0.167 (the variance of the sum), so a model beats
the baseline only if its gradient reaches back to the first marker, up to T steps.

Every model has the same units, optimiser (Adam), batch size and number of training
steps, on fresh random sequences; the test set is fixed. For each model the table gives
the test MSE and the gradient-norm ratio ||dLoss/ds(1)|| / ||dLoss/ds(T)|| on a test
batch, at initialisation and after training (Recurrent: seqapps.diagnostics; LSTM and
GRU: their cells unrolled under a tape, the gradient taken wrt each hidden state h(n)).

A second table (at one length) measures single remedies: recurrent initialisers,
gradient clipping and truncated BPTT.

    PYTHONPATH=. .venv/bin/python benchmarks/long_memory.py            # ~15-20 min
    PYTHONPATH=. .venv/bin/python benchmarks/long_memory.py --quick    # ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seqapps.diagnostics import gradient_report, summarize_norms  # noqa: E402
from seqapps.layers import Recurrent  # noqa: E402

BASELINE_MSE = 1.0 / 6.0
CLIPNORM = 1.0


def adding_problem(count: int, steps: int, rng: np.random.Generator):
    """x [count, steps, 2] (value, marker) and y [count, 1], one marker in each half."""
    values = rng.uniform(0.0, 1.0, size=(count, steps))
    markers = np.zeros((count, steps))
    rows = np.arange(count)
    markers[rows, rng.integers(0, steps // 2, count)] = 1.0
    markers[rows, rng.integers(steps // 2, steps, count)] = 1.0
    x = np.stack([values, markers], axis=-1).astype("float32")
    y = np.sum(values * markers, axis=1, keepdims=True).astype("float32")
    return x, y


# name -> (layer factory(units, steps), clipnorm). "remedies": the best combination found
# (relu + identity W_s as in IRNN, with gradient clipping); see README, "Gradients through time".
MAIN_MODELS = {
    "tanh, orthogonal W_s": (lambda u, t: Recurrent(u, recurrent_initializer="orthogonal"), None),
    "IRNN (relu, identity W_s)": (
        lambda u, t: Recurrent(u, activation="relu", recurrent_initializer="identity"), None),
    "IRNN + clipnorm 1 (remedies)": (
        lambda u, t: Recurrent(u, activation="relu", recurrent_initializer="identity"), CLIPNORM),
    "keras LSTM": (lambda u, t: keras.layers.LSTM(u), None),
    "keras GRU": (lambda u, t: keras.layers.GRU(u), None),
}

REMEDY_MODELS = {
    "tanh, glorot W_s (no remedy)": (
        lambda u, t: Recurrent(u, recurrent_initializer="glorot_uniform"), None),
    "tanh, orthogonal W_s + clipnorm 1": (lambda u, t: Recurrent(u), CLIPNORM),
    "relu, spectral radius 0.9 + clipnorm 1": (
        lambda u, t: Recurrent(u, activation="relu",
                               recurrent_initializer=("spectral_radius", 0.9)), CLIPNORM),
    "tanh, orthogonal W_s + normalised a(n)": (
        lambda u, t: Recurrent(u, normalize_preactivation=True), None),
    "IRNN + clipnorm 1 + normalised a(n)": (
        lambda u, t: Recurrent(u, activation="relu", recurrent_initializer="identity",
                               normalize_preactivation=True), CLIPNORM),
    "IRNN + clipnorm 1 + truncate_bptt T/4": (
        lambda u, t: Recurrent(u, activation="relu", recurrent_initializer="identity",
                               truncate_bptt=max(1, t // 4)), CLIPNORM),
}


def _unrolled_cell_norms(model, x, y) -> list[float]:
    """||dLoss/dh(n)|| for a keras LSTM/GRU model: its cell run step by step under a tape."""
    rnn, head = model.layers[0], model.layers[1]
    cell = rnn.cell
    batch = x.shape[0]
    sizes = cell.state_size if isinstance(cell.state_size, (list, tuple)) else [cell.state_size]
    states = [tf.zeros([batch, size]) for size in sizes]
    hidden = []
    with tf.GradientTape() as tape:
        for n in range(x.shape[1]):
            output, states = cell(x[:, n], states, training=False)
            states = list(states) if isinstance(states, (list, tuple)) else [states]
            tape.watch(output)
            hidden.append(output)
        loss = tf.reduce_mean(tf.square(head(hidden[-1]) - y))
    return [float(tf.norm(g)) for g in tape.gradient(loss, hidden)]


def _stepwise_layer_norms(model, x, y) -> list[float]:
    """||dLoss/ds(n)|| for a Recurrent layer the diagnostics cannot see (normalised a(n)):
    the layer called one step at a time, the state carried explicitly and watched."""
    layer, head = model.layers[0], model.layers[1]
    one_step = Recurrent.from_config({**layer.get_config(), "return_state": True, "name": "step"})
    one_step.build(x.shape)
    one_step.set_weights(layer.get_weights())
    state, states = tf.zeros([x.shape[0], layer.units]), []
    with tf.GradientTape() as tape:
        for n in range(x.shape[1]):
            _, state = one_step(x[:, n : n + 1], initial_state=state)
            tape.watch(state)
            states.append(state)
        loss = tf.reduce_mean(tf.square(head(states[-1]) - y))
    return [float(tf.norm(g)) for g in tape.gradient(loss, states)]


def gradient_ratio(model, x, y) -> dict:
    """First/last gradient-norm ratio and memory horizon of the model's recurrent layer."""
    layer = model.layers[0]
    if isinstance(layer, Recurrent) and layer.normalize_preactivation:
        return summarize_norms(_stepwise_layer_norms(model, x, y))
    if isinstance(layer, Recurrent):
        return gradient_report(model, x, y, loss="mse")["layers"][0]["summary"]
    return summarize_norms(_unrolled_cell_norms(model, x, y))


def train_one(factory, clipnorm, *, steps, units, train_steps, batch_size, learning_rate,
              test, seed, chunk=250) -> dict:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((steps, 2)), factory(units, steps), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(learning_rate, clipnorm=clipnorm), "mse")
    x_test, y_test = test
    probe = (x_test[:128], y_test[:128])
    at_init = gradient_ratio(model, *probe)
    rng = np.random.default_rng(seed + 1)
    curve, started, done = [], time.perf_counter(), 0
    while done < train_steps:
        now = min(chunk, train_steps - done)
        x, y = adding_problem(now * batch_size, steps, rng)
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
        done += now
        curve.append((done, float(model.evaluate(x_test[:256], y_test[:256], verbose=0))))
    seconds = time.perf_counter() - started
    mse = float(model.evaluate(x_test, y_test, verbose=0, batch_size=256))
    trained = gradient_ratio(model, *probe)
    return {
        "test_mse": mse,
        "mse_over_baseline": mse / BASELINE_MSE,
        "ratio_at_init": at_init["first_to_last_ratio"],
        "horizon_at_init": at_init["memory_horizon"],
        "ratio_trained": trained["first_to_last_ratio"],
        "horizon_trained": trained["memory_horizon"],
        "train_seconds": seconds,
        "curve": curve,
    }


def _format(rows: list[dict], title: str) -> str:
    head = (f"{'model':<40}{'T':>5}{'test MSE':>10}{'/0.167':>8}{'ratio init':>12}"
            f"{'ratio trained':>15}{'horizon':>9}{'s':>6}")
    lines = [title, head, "-" * len(head)]
    for r in rows:
        mse = r["test_mse"]
        lines.append(
            f"{r['model']:<40}{r['length']:>5}{mse:>10.4f}{r['mse_over_baseline']:>8.3f}"
            f"{r['ratio_at_init']:>12.2e}{r['ratio_trained']:>15.2e}"
            f"{r['horizon_trained']:>5}/{r['length']:<3}{r['train_seconds']:>6.0f}"
        )
    return "\n".join(lines)


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T=50 only, 150 steps, no ablation")
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--train-steps", type=int, default=1000)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--remedies-length", type=int, default=100,
                        help="length of the single-remedy table; 0 to skip it")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=None,
                        help="run only models whose name contains one of these strings")
    parser.add_argument("--out", default="bench_out/long_memory.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.train_steps, args.remedies_length = [50], 150, 0

    started = time.perf_counter()
    settings = dict(units=args.units, train_steps=args.train_steps, batch_size=args.batch_size,
                    learning_rate=args.learning_rate)
    jobs = [(length, name, spec, "main") for length in args.lengths
            for name, spec in MAIN_MODELS.items()]
    if args.remedies_length:
        jobs += [(args.remedies_length, name, spec, "remedies")
                 for name, spec in REMEDY_MODELS.items()]
    if args.models:
        jobs = [job for job in jobs if any(part in job[1] for part in args.models)]
    tests, rows = {}, []
    for length, name, (factory, clipnorm), table in jobs:
        if length not in tests:
            tests[length] = adding_problem(args.test_size, length,
                                           np.random.default_rng(10_000 + length))
        result = train_one(factory, clipnorm, steps=length, test=tests[length],
                           seed=args.seed, **settings)
        rows.append({"table": table, "model": name, "length": length, **result})
        print(f"[{time.perf_counter() - started:6.0f}s] T={length:<4} {name:<40} "
              f"MSE {result['test_mse']:.4f}", flush=True)

    total = time.perf_counter() - started
    main_rows = [r for r in rows if r["table"] == "main"]
    print()
    print(_format(main_rows, f"Adding problem, {args.train_steps} steps of batch {args.batch_size}, "
                             f"{args.units} units, Adam {args.learning_rate:g} "
                             f"(trivial baseline MSE {BASELINE_MSE:.3f})"))
    remedy_rows = [r for r in rows if r["table"] == "remedies"]
    if remedy_rows:
        best = [r for r in main_rows if r["length"] == args.remedies_length]
        print()
        print(_format(remedy_rows + best, f"Single remedies at T={args.remedies_length}"))
    print(f"\ntotal {total:.0f} s")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json_safe({
        "benchmark": "long_memory",
        "settings": {**settings, "lengths": args.lengths, "test_size": args.test_size,
                     "seed": args.seed, "clipnorm": CLIPNORM, "quick": args.quick,
                     "cpu_count": os.cpu_count()},
        "baseline_mse": BASELINE_MSE,
        "rows": rows,
        "total_seconds": total,
    }), indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
