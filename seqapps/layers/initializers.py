"""Recurrent-kernel initializers that control how gradients travel through time.

The gradient reaching s(n) from a loss at step T is a product of T-n Jacobians
diag(phi'(a)) W_s^T, so the spectrum of W_s decides whether it vanishes or explodes.

>>> import keras
>>> init = SpectralRadius(radius=0.9, seed=0)
>>> w = init((8, 8))
>>> import numpy as np
>>> round(float(np.max(np.abs(np.linalg.eigvals(keras.ops.convert_to_numpy(w))))), 4)
0.9
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from seqapps.errors import invalid_argument


@keras.saving.register_keras_serializable(package="seqapps")
class SpectralRadius(keras.initializers.Initializer):
    """A square matrix from `base`, rescaled so its largest |eigenvalue| equals `radius`.

    Echo-state networks and long-memory RNN studies pick the spectral radius just below
    one: above it the free recursion grows, far below it the memory fades quickly.

    Args:
        radius: the target spectral radius, > 0.
        base: the Keras initializer drawn first (default "glorot_uniform").
        seed: seed for `base` when it is given by name.

    Example:
    >>> w = SpectralRadius(radius=1.0, seed=1)((4, 4))
    """

    def __init__(self, *, radius: float = 1.0, base="glorot_uniform", seed: int | None = None):
        if not (isinstance(radius, (int, float)) and radius > 0):
            raise invalid_argument("radius", radius, "a positive number")
        self.radius = float(radius)
        self.seed = seed
        if isinstance(base, str) and seed is not None:
            base = keras.initializers.get({"class_name": base, "config": {"seed": seed}})
        self.base = keras.initializers.get(base)

    def __call__(self, shape, dtype=None):
        if len(shape) != 2 or shape[0] != shape[1]:
            raise invalid_argument("shape", tuple(shape), "square (units, units)")
        w = keras.ops.convert_to_numpy(self.base(shape, dtype="float32")).astype(np.float64)
        rho = float(np.max(np.abs(np.linalg.eigvals(w)))) if w.size else 0.0
        if rho > 0:
            w *= self.radius / rho
        return tf.constant(w, dtype=dtype or "float32")

    def get_config(self):
        return {
            "radius": self.radius,
            "base": keras.initializers.serialize(self.base),
            "seed": self.seed,
        }
