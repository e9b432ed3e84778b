"""Gradients through time: how far back a loss reaches into each Recurrent layer's states.

Backpropagation through the unfolded time axis multiplies the gradient by one Jacobian
diag(phi'(a(n))) W_s^T per step, so dLoss/ds(n) shrinks or grows geometrically with the
distance n is from the loss. This module measures it for a model and a batch:

- the norm of G(n) = dLoss/ds(n) at every step n of every Recurrent layer (stacked ones and
  ones inside nested models included), taken from the layer's explicit BPTT recursion
  (seqapps.layers.bptt, bptt_normalized), so it is the total gradient, through the recursion and through every
  layer above;
- the singular values of each W_s;
- a summary per layer: the ratio of the norm at the first step to that at the last, and the
  memory horizon, the number of steps counting back from the last step over which the
  norm stays above `threshold` (1e-3) times the largest norm.

G(n) comes from the public recording hook of the recursion
(seqapps.layers.state_gradients.record_state_gradients): nothing is patched, and
layers with normalize_preactivation are covered by their own backward recursion.

`write_report` writes it as JSON and as a PNG (log-scale norm against step, one line per
layer); `diagnose` does both for the `seqapps diagnose` command.

Steps are in processing order: with go_backwards=True, step 1 is the last input step.

>>> import numpy as np, keras
>>> from seqapps.layers import Recurrent
>>> model = keras.Sequential([keras.Input((20, 1)), Recurrent(4), keras.layers.Dense(1)])
>>> report = gradient_report(model, np.ones((2, 20, 1), "float32"), np.zeros((2, 1), "float32"),
...                          loss="mse")
>>> len(report["layers"][0]["gradient_norms"])
20
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqapps.errors import ConfigError, invalid_argument
from seqapps.layers.recurrent import Recurrent
from seqapps.layers.state_gradients import record_state_gradients

DEFAULT_THRESHOLD = 1e-3
JSON_NAME = "gradient_report.json"
PNG_NAME = "gradient_norms.png"


# --------------------------------------------------------------------------- summary
def summarize_norms(norms, *, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Ratio first/last and memory horizon of one layer's per-step gradient norms.

    Args:
        norms: [time] norms of dLoss/ds(n), in processing order.
        threshold: the horizon counts steps whose norm is >= threshold * max(norms).

    Returns:
        dict with `first_to_last_ratio` (norm at step 1 / norm at step T; inf when the
        last is 0), `peak_step` (1-based step of the largest norm), `max_norm`,
        `memory_horizon` (steps, counting back from step T and including it, over which
        the norm stays >= threshold * max; T means the gradient reaches step 1; 0 when
        step T itself is below), `reaches_first_step`, and `finite` (False when a norm
        is inf or nan, as after a diverged training run; the other values are then nan/0).

    Example:
    >>> s = summarize_norms(0.5 ** np.arange(19, -1, -1))   # halves at each step back
    >>> s["memory_horizon"], s["first_to_last_ratio"] == 0.5 ** 19
    (10, True)
    """
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim != 1 or norms.size == 0:
        raise invalid_argument("norms.shape", norms.shape, "[time] with time >= 1")
    if not threshold > 0:
        raise invalid_argument("threshold", threshold, "a positive number")
    if not np.all(np.isfinite(norms)):  # a diverged model: nothing to measure
        return {"first_to_last_ratio": math.nan, "peak_step": 0, "max_norm": math.nan,
                "memory_horizon": 0, "reaches_first_step": False, "finite": False}
    finite = norms
    peak = int(np.argmax(finite))
    largest = float(finite[peak])
    first, last = float(norms[0]), float(norms[-1])
    ratio = first / last if last > 0 else (math.inf if first > 0 else math.nan)
    if largest > 0:
        # The run of steps above the threshold that ends at the last step (where a
        # many-to-one loss sits): how far back the loss still reaches.
        below = np.flatnonzero(finite < threshold * largest)
        horizon = norms.size if below.size == 0 else norms.size - 1 - int(below[-1])
    else:
        horizon = 0
    return {
        "first_to_last_ratio": ratio,
        "peak_step": peak + 1,
        "max_norm": largest,
        "memory_horizon": int(horizon),
        "reaches_first_step": bool(horizon == norms.size),
        "finite": True,
    }


# --------------------------------------------------------------------------- layers
def recurrent_layers(model: keras.layers.Layer) -> list[Recurrent]:
    """Every Recurrent layer in `model`, nested models and custom layers included, in order.

    Walks `Model.layers` and, for other layers, the sublayers held in their attributes
    (Keras' public tracking), so no private Keras API is needed.

    Example:
    >>> from seqapps.layers import Recurrent
    >>> inner = keras.Sequential([Recurrent(3, return_sequences=True)])
    >>> outer = keras.Sequential([keras.Input((5, 2)), inner, Recurrent(2)])
    >>> [layer.units for layer in recurrent_layers(outer)]
    [3, 2]
    """
    found, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, Recurrent):
            found.append(layer)
        for child in _sublayers(layer):
            visit(child)

    visit(model)
    return found


def _sublayers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    children = []
    for value in vars(layer).values():
        if isinstance(value, dict):
            value = list(value.values())
        values = value if isinstance(value, (list, tuple)) else [value]
        children.extend(v for v in values if isinstance(v, keras.layers.Layer))
    return children


# --------------------------------------------------------------------------- report
def _resolve_loss(model, loss) -> Callable:
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ConfigError(
                "`loss` must be given when the model was not compiled with one. Received: loss=None"
            )
    if isinstance(loss, (str, dict)):
        try:
            return keras.losses.get(loss)
        except (ValueError, TypeError) as err:
            raise invalid_argument("loss", loss, "a Keras loss name or a callable") from err
    if not callable(loss):
        raise invalid_argument("loss", loss, "a Keras loss name or a callable")
    return loss


def _activation_name(layer: Recurrent) -> str:
    if isinstance(layer.activation, str) or layer.activation is None:
        return str(layer.activation or "linear")
    return getattr(layer.activation, "__name__", repr(layer.activation))


def _norms_per_step(model, x, y, loss_fn, *, training):
    """(loss, layer of each recorded call, [time] norms of G(n) per call)."""
    # Eager on purpose: tracing a graph costs seconds of CPU, more than running the
    # recursions step by step for sequences of a few hundred steps.
    inputs = tf.nest.map_structure(tf.convert_to_tensor, x)
    # Gradients are taken to the float inputs too, so a frozen Recurrent layer's recursion
    # still runs its backward pass (and so records G(n)).
    watched = [t for t in tf.nest.flatten(inputs) if t.dtype.is_floating]
    with tf.GradientTape() as tape:
        tape.watch(watched)
        with record_state_gradients() as records:
            predictions = model(inputs, training=training)
        value = tf.reduce_mean(tf.cast(loss_fn(y, predictions), tf.float32))
        penalties = [tf.cast(p, tf.float32) for p in getattr(model, "losses", [])]
        if penalties:
            value += tf.add_n(penalties)
    if not records:
        raise ConfigError(
            "no Recurrent layer ran its recursion (an empty sequence?); "
            "the diagnostics cannot see its states"
        )
    # The backward pass of each recursion hands its G(n) to its record.
    tape.gradient(value, watched + list(model.trainable_variables),
                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
    norms = []
    for record in records:
        # None: the loss does not depend on this call.
        totals = record.gradients if record.gradients is not None else tf.zeros_like(record.states)
        totals = tf.cast(totals, tf.float64)
        norms.append(tf.norm(tf.reshape(totals, [tf.shape(totals)[0], -1]), axis=1))
    return value, [record.layer for record in records], norms


def gradient_report(
    model: keras.layers.Layer,
    x,
    y,
    *,
    loss=None,
    threshold: float = DEFAULT_THRESHOLD,
    training: bool = False,
) -> dict:
    """Per-step gradient norms, W_s spectra and summaries for every Recurrent layer.

    One forward pass under a tape and one backward pass, during which each Recurrent
    call's own backward recursion records G(n) (seqapps.layers.state_gradients).

    Args:
        model: a Keras model (or layer) holding Recurrent layers at any depth.
        x: model inputs for one batch, e.g. [batch, time, features].
        y: targets for `loss`.
        loss: a Keras loss (name or callable(y_true, y_pred)); default: the model's
            compiled loss. The model's own penalty losses (regularisers) are added.
        threshold: relative level for the memory horizon (default 1e-3).
        training: call the model in training mode (dropout on).

    Returns:
        dict: {"loss", "batch_size", "threshold", "layers": [per layer: "name", "units",
        "activation", "steps", "go_backwards", "truncate_bptt", "gradient_norms" [time]
        (Frobenius norm over batch and units of G(n)), "singular_values" (of W_s,
        descending), "spectral_radius", "summary" (see summarize_norms)]}. A layer
        called twice appears twice, the second as "name#2".

    Example:
    >>> import numpy as np, keras
    >>> from seqapps.layers import Recurrent
    >>> model = keras.Sequential([keras.Input((30, 1)), Recurrent(8), keras.layers.Dense(1)])
    >>> model.compile(loss="mse")
    >>> r = gradient_report(model, np.ones((4, 30, 1), "float32"), np.ones((4, 1), "float32"))
    >>> r["layers"][0]["summary"]["memory_horizon"] <= 30
    True
    """
    loss_fn = _resolve_loss(model, loss)
    if not recurrent_layers(model):
        raise invalid_argument("model", getattr(model, "name", model), "a model with a Recurrent layer")
    # Diagnosing must not advance a stateful layer's kept state (nor any other
    # non-trainable variable, such as batch statistics with training=True).
    kept = [(v, keras.ops.convert_to_numpy(v)) for v in model.non_trainable_variables]
    try:
        value, called, all_norms = _norms_per_step(model, x, y, loss_fn, training=training)
    finally:
        for variable, saved in kept:
            variable.assign(saved)

    layer_reports, calls = [], {}
    for layer, norms in zip(called, all_norms, strict=True):
        calls[id(layer)] = calls.get(id(layer), 0) + 1
        name = layer.name if calls[id(layer)] == 1 else f"{layer.name}#{calls[id(layer)]}"
        norms = norms.numpy().tolist()
        recurrent_kernel = keras.ops.convert_to_numpy(layer.recurrent_kernel).astype(np.float64)
        if np.all(np.isfinite(recurrent_kernel)):
            singular = np.linalg.svd(recurrent_kernel, compute_uv=False)
            radius = float(np.max(np.abs(np.linalg.eigvals(recurrent_kernel))))
        else:  # a run that diverged: report it rather than fail on the SVD
            singular, radius = np.full(layer.units, np.nan), math.nan
        layer_reports.append({
            "name": name,
            "units": layer.units,
            "activation": _activation_name(layer),
            "steps": len(norms),
            "go_backwards": bool(layer.go_backwards),
            "truncate_bptt": layer.truncate_bptt,
            "gradient_norms": norms,
            "singular_values": singular.tolist(),
            "spectral_radius": radius,
            "summary": summarize_norms(norms, threshold=threshold) if norms else None,
        })
    return {
        "loss": float(value),
        "batch_size": int(np.shape(tf.nest.flatten(x)[0])[0]),
        "threshold": threshold,
        "layers": layer_reports,
    }


# --------------------------------------------------------------------------- output
def _json_safe(value):
    """Floats that JSON can hold: inf and nan become None (null)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_report(report: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write `report` as out_dir/gradient_report.json and out_dir/gradient_norms.png.

    The PNG has the log-scale norm of dLoss/ds(n) against step n, one line per layer,
    and the singular values of each W_s. Non-finite numbers are null in the JSON.

    Example:
    >>> json_path, png_path = write_report(report, "diagnose_out")   # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / JSON_NAME, out / PNG_NAME
    json_path.write_text(json.dumps(_json_safe(report), indent=2))

    figure, (norm_axis, spectrum_axis) = plt.subplots(
        1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]}
    )
    for layer in report["layers"]:
        norms = np.asarray(layer["gradient_norms"], dtype=np.float64)
        # Zero norms cannot sit on a log axis; leave gaps rather than invent values.
        norms = np.where(norms > 0, norms, np.nan)
        summary = layer["summary"] or {}
        label = (f"{layer['name']} (first/last {summary.get('first_to_last_ratio', math.nan):.2g},"
                 f" horizon {summary.get('memory_horizon', 0)})")
        norm_axis.plot(np.arange(1, norms.size + 1), norms, label=label)
        singular = np.asarray(layer["singular_values"], dtype=np.float64)
        spectrum_axis.plot(np.arange(1, singular.size + 1), np.where(singular > 0, singular, np.nan),
                           marker=".", label=layer["name"])
    norm_axis.set_yscale("log")
    norm_axis.set_xlabel("step n")
    norm_axis.set_ylabel("||dLoss/ds(n)||")
    norm_axis.set_title(f"Gradient through time (loss {report['loss']:.4g})")
    norm_axis.legend(fontsize="small")
    spectrum_axis.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    spectrum_axis.set_yscale("log")
    spectrum_axis.set_xlabel("index")
    spectrum_axis.set_ylabel("singular value of W_s")
    spectrum_axis.set_title("Spectrum of W_s")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return json_path, png_path


def format_summary(report: dict) -> str:
    """A small table of the per-layer summaries, for printing.

    Example:
    >>> print(format_summary(report))   # doctest: +SKIP
    layer        steps  first/last  horizon  max |sigma(W_s)|
    recurrent      100    3.1e-05       41              1.00
    """
    lines = [f"{'layer':<24}{'steps':>6}{'first/last':>12}{'horizon':>9}{'max sigma(W_s)':>16}"]
    for layer in report["layers"]:
        s = layer["summary"] or {}
        top = layer["singular_values"][0] if layer["singular_values"] else math.nan
        lines.append(
            f"{layer['name']:<24}{layer['steps']:>6}{s.get('first_to_last_ratio', math.nan):>12.3g}"
            f"{s.get('memory_horizon', 0):>9}{top:>16.3g}"
        )
    return "\n".join(lines)


def diagnose(
    model: keras.layers.Layer,
    x,
    y,
    *,
    out_dir: str | os.PathLike,
    loss=None,
    max_examples: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict:
    """What `seqapps diagnose` runs: report on one batch, write JSON and PNG.

    Args:
        model: a loaded (trained or untrained) Keras model.
        x, y: arrays [examples, time, features] and targets; the first `max_examples`
            examples form the batch (all when None).
        out_dir: folder for gradient_report.json and gradient_norms.png.
        loss, threshold: as in gradient_report.

    Returns:
        {"report": dict, "json": Path, "png": Path, "text": format_summary(report)}.

    Example:
    >>> result = diagnose(model, x, y, out_dir="diagnose_out", max_examples=32)  # doctest: +SKIP
    >>> print(result["text"])                                                   # doctest: +SKIP
    """
    if max_examples is not None:
        if not isinstance(max_examples, int) or isinstance(max_examples, bool) or max_examples <= 0:
            raise invalid_argument("max_examples", max_examples, "None or a positive integer")
        x = tf.nest.map_structure(lambda a: a[:max_examples], x)
        y = tf.nest.map_structure(lambda a: a[:max_examples], y)
    report = gradient_report(model, x, y, loss=loss, threshold=threshold)
    json_path, png_path = write_report(report, out_dir)
    return {"report": report, "json": json_path, "png": png_path, "text": format_summary(report)}
