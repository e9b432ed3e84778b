"""Recover the coefficients of a first-order IIR filter with the Recurrent layer.

With a linear phi and one unit, Recurrent is s(n) = w_x x(n) + w_s s(n-1) + b: a
first-order IIR filter. Generating data with scipy.signal.lfilter and fitting the layer
by BPTT should recover (w_x, w_s) — a small, checkable example of the whole machinery.

>>> result = fit_iir_filter(w_x=0.5, w_s=0.8, epochs=40, seed=0)  # doctest: +SKIP
>>> abs(result["fitted"]["w_s"] - 0.8) < 0.01                      # doctest: +SKIP
True
"""

from __future__ import annotations

import keras
import numpy as np
import scipy.signal


def fit_iir_filter(
    *, w_x: float = 0.5, w_s: float = 0.8, steps: int = 64, sequences: int = 256,
    epochs: int = 40, seed: int = 0,
) -> dict:
    """Fit a one-unit linear Recurrent layer to lfilter([w_x], [1, -w_s], noise).

    Returns {"true": {...}, "fitted": {...}, "final_loss": float}.
    """
    from seqapps.layers import Recurrent  # late: keeps `import seqapps.iir_example` light

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((sequences, steps)).astype("float32")
    y = scipy.signal.lfilter([w_x], [1.0, -w_s], x, axis=1).astype("float32")
    model = keras.Sequential(
        [keras.Input((None, 1)), Recurrent(1, activation="linear", return_sequences=True,
                                           recurrent_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    history = model.fit(x[..., None], y[..., None], epochs=epochs, batch_size=32, verbose=0)
    kernel, recurrent_kernel, bias = (w.ravel()[0] for w in model.layers[0].get_weights())
    return {
        "true": {"w_x": w_x, "w_s": w_s, "b": 0.0},
        "fitted": {"w_x": float(kernel), "w_s": float(recurrent_kernel), "b": float(bias)},
        "final_loss": float(history.history["loss"][-1]),
    }
