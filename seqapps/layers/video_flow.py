"""Lucas–Kanade optical flow per grid cell, in the graph: a direction-aware motion feature.

A signed frame difference (``FrameDifference``) of a dark object moving right looks like
that of a bright object moving left, and ``FrameMotion``'s magnitudes have no direction
at all. Optical flow solves for the displacement that explains the change, so it gives
the direction whatever the contrast. Like the other frame layers it takes raw frames
[batch, time, height, width, channels] and returns float32 [batch, time, features].

>>> import numpy as np
>>> FrameFlow(size=(16, 16), grid=(2, 2))(np.zeros((1, 3, 32, 32, 3), np.uint8)).shape
TensorShape([1, 3, 8])
"""

from __future__ import annotations

import keras
import tensorflow as tf

from seqapps.errors import invalid_argument
from seqapps.layers.video_frontends import _check_pair, _FrameLayer, _gray_with_previous

__all__ = ["FrameFlow"]


def _gradient(x, axis: int):
    """Central differences along `axis` (2 = rows, 3 = columns of [b, t, h, w]), one-sided
    at the two edges: ``np.gradient(x, axis=axis)``."""
    def part(start, stop):
        index = [slice(None)] * 4
        index[axis] = slice(start, stop)
        return x[tuple(index)]

    interior = 0.5 * (part(2, None) - part(None, -2))
    return tf.concat([part(1, 2) - part(0, 1), interior, part(-1, None) - part(-2, -1)], axis=axis)


@keras.saving.register_keras_serializable(package="seqapps")
class FrameFlow(_FrameLayer):
    """Lucas–Kanade optical flow of consecutive frames per grid cell: [batch, time, 2 * cells].

    Frames are turned to gray g in [0, 1] and resized (area) to ``size``. With
    m = (g_t + g_{t-1}) / 2, the spatial gradients I_x, I_y are central differences of m
    (``np.gradient``; the area resize already smooths) and I_t = g_t - g_{t-1} (zero for
    the first frame of the input, as FrameDifference and FrameMotion). In each of the
    grid_h x grid_w cells, with means over the cell's pixels,

        A = [[<I_x I_x>, <I_x I_y>], [<I_x I_y>, <I_y I_y>]],  b = [<I_x I_t>, <I_y I_t>]

    and the flow [u, v] solves ``(A + regularization * I) [u, v] = -b`` (in closed form).
    u > 0 is motion to the right, v > 0 motion down, in pixels per frame at ``size``;
    features are [u of all cells, v of all cells], cells in row-major order. Flipping
    the contrast (g -> 1 - g) flips every gradient and I_t, so the flow is unchanged: a
    dark and a bright object moving right give the same flow.

    The linearisation holds for displacements up to about one pixel at ``size``; faster
    motion is underestimated (there is no pyramid).

    Args:
        size: (height, width) to resize frames to; each a multiple of ``grid``.
        grid: (rows, columns) of cells.
        regularization: added to the diagonal of A (per pixel, as A holds means, so it
            does not depend on the cell size). Cells without texture (a flat background)
            or with one edge direction only (the aperture problem) make A singular; the
            term makes their flow shrink to zero (or to the normal flow of the edge)
            instead of amplifying noise. 1e-3 is the mean squared gradient of one sharp
            edge of contrast 0.13 crossing a cell 8 pixels wide (contrast**2 / 16), and
            some 20x that of sensor noise of std 10/255 after a 2x area resize. The
            price: weakly textured cells report part of their motion (a blob moving
            1 px per frame gives 0.4 at contrast 0.4, 0.6 at contrast 0.6), so u, v are
            a contrast-weighted speed; 1e-4 and 1e-2 scored no better in
            benchmarks/video_suite.py.

    >>> import numpy as np
    >>> FrameFlow(size=(8, 8), grid=(2, 4))(np.zeros((2, 5, 48, 64, 3), np.uint8)).shape
    TensorShape([2, 5, 16])
    """

    def __init__(self, *, size=(32, 32), grid=(4, 4), regularization=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.size = _check_pair("size", size)
        self.grid = _check_pair("grid", grid)
        if min(self.size) < 2:
            raise invalid_argument("size", size, "a pair of integers >= 2 (gradients need two pixels)")
        if self.size[0] % self.grid[0] or self.size[1] % self.grid[1]:
            raise invalid_argument("grid", grid, f"a divisor of size={self.size}")
        if isinstance(regularization, bool) or not (
            isinstance(regularization, (int, float)) and regularization > 0
        ):
            raise invalid_argument("regularization", regularization, "a positive number")
        self.regularization = float(regularization)

    def feature_size(self, channels):
        return 2 * self.grid[0] * self.grid[1]

    def call(self, inputs):
        x, previous = _gray_with_previous(inputs, self.size)
        batch, time = tf.shape(x)[0], tf.shape(x)[1]
        height, width = self.size
        mean = 0.5 * (x + previous)
        gx, gy, gt = _gradient(mean, 3), _gradient(mean, 2), x - previous
        products = tf.stack([gx * gx, gy * gy, gx * gy, gx * gt, gy * gt], axis=-1)
        grid_h, grid_w = self.grid
        cells = tf.reshape(products, tf.stack([batch, time, grid_h, height // grid_h, grid_w, width // grid_w, 5]))
        cells = tf.reshape(tf.reduce_mean(cells, axis=[3, 5]), tf.stack([batch, time, grid_h * grid_w, 5]))
        sxx, syy, sxy, sxt, syt = tf.unstack(cells, axis=-1)
        a, d = sxx + self.regularization, syy + self.regularization
        # A is positive semi-definite, so det >= regularization**2 > 0.
        det = a * d - sxy * sxy
        u = (sxy * syt - d * sxt) / det
        v = (sxy * sxt - a * syt) / det
        return tf.concat([u, v], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"size": list(self.size), "grid": list(self.grid), "regularization": self.regularization})
        return config
