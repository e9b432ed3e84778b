"""Frame features computed in the graph from raw decoded frames.

Every layer takes uint8 (or float) frames [batch, time, height, width, channels] with
dynamic batch, time, height and width, and returns float32 [batch, time, features], so an
exported model takes raw frames and computes exactly what training computed. A Keras
mask [batch, time] passes through unchanged.

>>> import numpy as np
>>> frames = np.zeros((2, 5, 48, 64, 3), np.uint8)
>>> FramePixels(size=(8, 8))(frames).shape
TensorShape([2, 5, 192])
"""

from __future__ import annotations

import keras
import tensorflow as tf

from seqapps.errors import invalid_argument

_PACKAGE = "seqapps"


def _check_pair(name, value):
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and v > 0 for v in value)
    ):
        raise invalid_argument(name, value, "a pair of positive integers")
    return tuple(int(v) for v in value)


def _fold_time(frames):
    """[batch, time, h, w, c] -> ([batch * time, h, w, c], (batch, time)); dynamic shapes."""
    shape = tf.shape(frames)
    folded = tf.reshape(frames, tf.concat([[-1], shape[2:]], axis=0))
    return folded, shape[0], shape[1]


def _unfold_time(values, batch, time):
    """[batch * time, features] -> [batch, time, features]."""
    return tf.reshape(values, tf.stack([batch, time, tf.shape(values)[-1]]))


def _to_unit(frames):
    """uint8 [0, 255] -> float32 [0, 1]; float input is taken as already in [0, 255]."""
    return tf.cast(frames, tf.float32) / 255.0


def _gray_with_previous(frames, size):
    """Frames [batch, time, h, w, c] as gray in [0, 1], area-resized to `size`, and each
    one's previous frame (the first is its own, so its difference is zero): two tensors
    [batch, time, size[0], size[1]]. What the motion features start from."""
    folded, batch, time = _fold_time(frames)
    x = _to_unit(folded)
    if x.shape[-1] != 1:
        x = tf.image.rgb_to_grayscale(x)
    x = tf.image.resize(x, size, method="area")[..., 0]
    x = tf.reshape(x, tf.stack([batch, time, size[0], size[1]]))
    return x, tf.concat([x[:, :1], x[:, :-1]], axis=1)


class _FrameLayer(keras.layers.Layer):
    """Shared plumbing: mask pass-through and a [batch, time, features] output shape."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return mask

    def feature_size(self, channels: int) -> int:
        """Features per frame for `channels` input channels; each frame layer defines it."""
        raise TypeError(f"{type(self).__name__} does not define feature_size")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.feature_size(input_shape[-1]))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FramePixels(_FrameLayer):
    """Downsampled, normalised pixels of each frame, flattened: [batch, time, h * w * c].

    Args:
        size: (height, width) to resize each frame to (area averaging, as
            ``cv2.INTER_AREA``), without keeping the aspect ratio: crop or pad at the
            edge (``pipelines.video.iter_frames``) for that.
        normalization: "unit" (scale to [0, 1]) or "standardize" (zero mean, unit
            variance per frame).
        grayscale: average the channels to one (ITU-R 601 luma weights) first.

    >>> import numpy as np
    >>> FramePixels(size=(4, 4))(np.zeros((1, 3, 32, 32, 3), np.uint8)).shape
    TensorShape([1, 3, 48])
    """

    def __init__(self, *, size=(16, 16), normalization="unit", grayscale=False, **kwargs):
        super().__init__(**kwargs)
        self.size = _check_pair("size", size)
        if normalization not in ("unit", "standardize"):
            raise invalid_argument("normalization", normalization, 'one of ("unit", "standardize")')
        self.normalization = normalization
        self.grayscale = bool(grayscale)

    def feature_size(self, channels):
        return self.size[0] * self.size[1] * (1 if self.grayscale else channels)

    def call(self, inputs):
        folded, batch, time = _fold_time(inputs)
        x = _to_unit(folded)
        if self.grayscale and x.shape[-1] != 1:
            x = tf.image.rgb_to_grayscale(x)
        x = tf.image.resize(x, self.size, method="area")
        x = tf.reshape(x, tf.stack([tf.shape(x)[0], -1]))
        if self.normalization == "standardize":
            mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
            x = (x - mean) / tf.sqrt(variance + 1e-6)
        return _unfold_time(x, batch, time)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"size": list(self.size), "normalization": self.normalization, "grayscale": self.grayscale}
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ColorHistogram(_FrameLayer):
    """Per-channel intensity histograms of each frame: [batch, time, channels * bins].

    Bin ``k`` counts values v with ``floor(v * bins / 256) == k`` (equal-width bins over
    [0, 256), as ``np.histogram(v, bins, range=(0, 256))`` and ``cv2.calcHist``). With
    ``normalize`` the counts are divided by the pixel count, so each channel sums to 1.

    >>> import numpy as np
    >>> ColorHistogram(bins=8)(np.zeros((1, 2, 10, 10, 3), np.uint8)).shape
    TensorShape([1, 2, 24])
    """

    def __init__(self, *, bins=16, normalize=True, **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(bins, int) and 1 <= bins <= 256):
            raise invalid_argument("bins", bins, "an integer in [1, 256]")
        self.bins = bins
        self.normalize = bool(normalize)

    def feature_size(self, channels):
        return channels * self.bins

    def call(self, inputs):
        folded, batch, time = _fold_time(inputs)
        shape = tf.shape(folded)
        channels = shape[-1]
        values = tf.clip_by_value(tf.cast(folded, tf.int32), 0, 255)
        bin_index = (values * self.bins) // 256
        # Give each channel its own block of bins, then count per frame in one bincount.
        bin_index += tf.range(channels) * self.bins
        flat = tf.reshape(bin_index, tf.stack([shape[0], -1]))
        width = channels * self.bins
        counts = tf.math.bincount(
            flat, minlength=width, maxlength=width, axis=-1, dtype=tf.float32
        )
        if self.normalize:
            pixels = tf.cast(shape[1] * shape[2], tf.float32)
            counts = counts / pixels
        return _unfold_time(counts, batch, time)

    def get_config(self):
        config = super().get_config()
        config.update({"bins": self.bins, "normalize": self.normalize})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrameDifference(_FrameLayer):
    """Signed difference of consecutive gray frames, downsampled: [batch, time, h * w].

    ``g_t - g_{t-1}`` (zero for the first frame of the input), with g the gray frame in
    [0, 1] resized (area) to ``size``. Unlike FrameMotion's magnitudes, the sign keeps
    the direction: an object brighter than its background moving right leaves positive
    values at its leading edge and negative ones at its trailing edge.

    >>> import numpy as np
    >>> FrameDifference(size=(4, 4))(np.zeros((1, 3, 32, 32, 3), np.uint8)).shape
    TensorShape([1, 3, 16])
    """

    def __init__(self, *, size=(8, 8), **kwargs):
        super().__init__(**kwargs)
        self.size = _check_pair("size", size)

    def feature_size(self, channels):
        return self.size[0] * self.size[1]

    def call(self, inputs):
        x, previous = _gray_with_previous(inputs, self.size)
        shape = tf.shape(x)
        return tf.reshape(x - previous, tf.stack([shape[0], shape[1], self.size[0] * self.size[1]]))

    def get_config(self):
        return {**super().get_config(), "size": list(self.size)}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrameMotion(_FrameLayer):
    """Motion from frame differences, summarised per grid cell: [batch, time, 3 * cells].

    Frames are turned to gray in [0, 1] and resized (area) to ``size``; the difference
    ``d_t = |g_t - g_{t-1}|`` (zero for the first frame of the input) is summarised in
    each of the grid_h x grid_w cells by its mean, its standard deviation and the
    fraction of pixels with ``d_t > threshold``. Features are ordered
    [mean of all cells, std of all cells, fraction of all cells].

    >>> import numpy as np
    >>> FrameMotion(grid=(2, 2))(np.zeros((1, 4, 32, 32, 3), np.uint8)).shape
    TensorShape([1, 4, 12])
    """

    def __init__(self, *, size=(32, 32), grid=(1, 1), threshold=0.05, **kwargs):
        super().__init__(**kwargs)
        self.size = _check_pair("size", size)
        self.grid = _check_pair("grid", grid)
        if self.size[0] % self.grid[0] or self.size[1] % self.grid[1]:
            raise invalid_argument("grid", grid, f"a divisor of size={self.size}")
        if not (isinstance(threshold, (int, float)) and 0 <= threshold < 1):
            raise invalid_argument("threshold", threshold, "a number in [0, 1)")
        self.threshold = float(threshold)

    def feature_size(self, channels):
        return 3 * self.grid[0] * self.grid[1]

    def call(self, inputs):
        x, previous = _gray_with_previous(inputs, self.size)
        batch, time = tf.shape(x)[0], tf.shape(x)[1]
        diff = tf.abs(x - previous)
        grid_h, grid_w = self.grid
        cell_h, cell_w = self.size[0] // grid_h, self.size[1] // grid_w
        cells = tf.reshape(diff, tf.stack([batch, time, grid_h, cell_h, grid_w, cell_w]))
        cells = tf.transpose(cells, [0, 1, 2, 4, 3, 5])
        cells = tf.reshape(cells, tf.stack([batch, time, grid_h * grid_w, cell_h * cell_w]))
        mean = tf.reduce_mean(cells, axis=-1)
        std = tf.math.reduce_std(cells, axis=-1)
        changed = tf.reduce_mean(tf.cast(cells > self.threshold, tf.float32), axis=-1)
        return tf.concat([mean, std, changed], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"size": list(self.size), "grid": list(self.grid), "threshold": self.threshold}
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrameEmbedder(_FrameLayer):
    """Any Keras image model applied to each frame (time folded into batch).

    Args:
        model: a Keras model mapping [n, h, w, 3] images to [n, features] (e.g.
            ``keras.applications.MobileNetV3Small(include_top=False, pooling="avg",
            weights=None or a weights file)`` or ``small_cnn()``).
        input_size: (height, width) to resize frames to before the model (bilinear);
            None feeds frames as they come.
        scale: "none" feeds float pixels in [0, 255] (keras.applications models
            rescale inside), "unit" divides by 255, "symmetric" maps to [-1, 1].

    >>> import numpy as np
    >>> embed = FrameEmbedder(model=small_cnn(embedding_dim=8), input_size=(32, 32), scale="unit")
    >>> embed(np.zeros((2, 3, 48, 64, 3), np.uint8)).shape
    TensorShape([2, 3, 8])
    """

    def __init__(self, *, model, input_size=None, scale="none", **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, dict):
            model = keras.saving.deserialize_keras_object(model)
        if not isinstance(model, keras.Model):
            raise invalid_argument("model", type(model).__name__, "a keras.Model")
        self.model = model
        self.input_size = None if input_size is None else _check_pair("input_size", input_size)
        if scale not in ("none", "unit", "symmetric"):
            raise invalid_argument("scale", scale, 'one of ("none", "unit", "symmetric")')
        self.scale = scale

    def build(self, input_shape):
        height, width, channels = input_shape[2], input_shape[3], input_shape[4]
        if self.input_size is not None:
            height, width = self.input_size
        if not self.model.built:
            self.model.build((None, height, width, channels))
        self.built = True

    def feature_size(self, channels):
        return self.model.output_shape[-1]

    def call(self, inputs):
        folded, batch, time = _fold_time(inputs)
        x = tf.cast(folded, tf.float32)
        if self.input_size is not None:
            x = tf.image.resize(x, self.input_size, method="bilinear")
        if self.scale == "unit":
            x = x / 255.0
        elif self.scale == "symmetric":
            x = x / 127.5 - 1.0
        embedded = self.model(x)
        return _unfold_time(tf.cast(embedded, tf.float32), batch, time)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.model),
                "input_size": None if self.input_size is None else list(self.input_size),
                "scale": self.scale,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


def small_cnn(
    *,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    filters: tuple[int, ...] = (16, 32),
    embedding_dim: int = 32,
    name: str = "small_cnn",
) -> keras.Model:
    """A small trainable CNN: [n, h, w, c] images -> [n, embedding_dim] features.

    Conv(3x3, relu) + max-pool per entry of ``filters``, global average pool, dense.
    Use it inside ``FrameEmbedder`` (with ``scale="unit"``).

    >>> small_cnn(embedding_dim=8).output_shape
    (None, 8)
    """
    if not (isinstance(embedding_dim, int) and embedding_dim > 0):
        raise invalid_argument("embedding_dim", embedding_dim, "a positive integer")
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for n in filters:
        x = keras.layers.Conv2D(n, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(embedding_dim, activation="relu")(x)
    return keras.Model(inputs, outputs, name=name)


def image_backbone(
    name: str = "MobileNetV3Small",
    *,
    input_shape: tuple[int, int, int] = (96, 96, 3),
    weights: str | None = None,
) -> keras.Model:
    """A keras.applications model without its top, pooled to [n, features].

    ``weights`` is None (random) or a path to a weights file the user provides; this
    never downloads (pass "imagenet" yourself if you want Keras to fetch weights).

    >>> image_backbone("MobileNetV3Small", input_shape=(64, 64, 3)).output_shape  # doctest: +SKIP
    (None, 576)
    """
    constructor = getattr(keras.applications, name, None)
    if constructor is None:
        raise invalid_argument("name", name, "a keras.applications model name")
    model = constructor(include_top=False, pooling="avg", weights=None, input_shape=input_shape)
    if weights is not None:
        model.load_weights(weights)
    return model


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrameFeatures(_FrameLayer):
    """Several frame-feature layers side by side, concatenated: [batch, time, sum features].

    >>> import numpy as np
    >>> layer = FrameFeatures(layers=[FramePixels(size=(4, 4)), ColorHistogram(bins=4)])
    >>> layer(np.zeros((1, 2, 16, 16, 3), np.uint8)).shape
    TensorShape([1, 2, 60])
    """

    def __init__(self, *, layers, **kwargs):
        super().__init__(**kwargs)
        if not layers:
            raise invalid_argument("layers", layers, "a non-empty list of frame-feature layers")
        self.layers = [
            keras.saving.deserialize_keras_object(layer) if isinstance(layer, dict) else layer
            for layer in layers
        ]

    def build(self, input_shape):
        for layer in self.layers:
            if not layer.built:
                layer.build(input_shape)
        self.built = True

    def feature_size(self, channels):
        return sum(layer.feature_size(channels) for layer in self.layers)

    def call(self, inputs):
        return tf.concat([layer(inputs) for layer in self.layers], axis=-1)

    def get_config(self):
        config = super().get_config()
        config["layers"] = [keras.saving.serialize_keras_object(layer) for layer in self.layers]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layers"] = [keras.saving.deserialize_keras_object(c) for c in config["layers"]]
        return cls(**config)
