"""Task heads: map recurrent states [batch, time, units] to predictions.

Pooling decides which states the head sees:
  "last"  the final state s(T) (masked steps hold the state, so with padding this is
          the state at the last valid step),
  "mean"  the mean of the states over valid steps,
  "max"   the maximum over valid steps,
  "none"  one prediction per time step ([batch, time, ...]).

>>> import numpy as np
>>> head = ClassificationHead(3, pooling="mean")
>>> head(np.zeros((2, 5, 4), "float32")).shape
TensorShape([2, 3])
"""

from __future__ import annotations

import keras
import tensorflow as tf

from seqapps.errors import invalid_argument
from seqapps.layers.running_ops import matmul_last_axis

POOLINGS = ("last", "mean", "max", "none")


def pool_states(states: tf.Tensor, mask: tf.Tensor | None, pooling: str) -> tf.Tensor:
    """Pool [batch, time, units] over valid steps; "none" returns the states unchanged."""
    if pooling == "none":
        return states
    if pooling == "last":
        return states[:, -1]
    if mask is None:
        mask = tf.ones(tf.shape(states)[:2], tf.bool)
    weights = tf.cast(mask, states.dtype)[..., tf.newaxis]
    if pooling == "mean":
        total = tf.reduce_sum(states * weights, axis=1)
        return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
    lowest = tf.cast(states.dtype.min, states.dtype)
    return tf.reduce_max(tf.where(weights > 0, states, lowest), axis=1)


class _PooledHead(keras.layers.Layer):
    def __init__(self, *, pooling: str, hidden_units: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise invalid_argument("pooling", pooling, f"one of {POOLINGS}")
        if not isinstance(hidden_units, int) or hidden_units < 0:
            raise invalid_argument("hidden_units", hidden_units, "a non-negative integer")
        if not 0.0 <= dropout < 1.0:
            raise invalid_argument("dropout", dropout, "a number in [0, 1)")
        self.pooling = pooling
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.supports_masking = True
        self._hidden = keras.layers.Dense(hidden_units, activation="relu") if hidden_units else None
        self._dropout = keras.layers.Dropout(dropout) if dropout else None

    def _features(self, states, mask, training):
        x = pool_states(states, mask, self.pooling)
        if self._dropout is not None:
            x = self._dropout(x, training=training)
        if self._hidden is not None:
            x = self._hidden(x)
        return x

    def per_step(self, states):
        """The head applied to the state of every step, [batch, time, outputs]: the
        prediction the model would make if the sequence ended at that step."""
        x = states if self._hidden is None else self._hidden(states)
        return self._output(x)

    def per_step_logits(self, states):
        """The output layer before its activation at every step, [batch, time, outputs].
        Without a hidden layer it is linear in the states, so averaging it over steps and
        then applying ``activate`` equals the mean-pooled head (a stream keeps a window of
        these instead of the wider states)."""
        x = states if self._hidden is None else self._hidden(states)
        output = self._output
        x = tf.cast(x, output.compute_dtype)
        logits = matmul_last_axis(x, tf.cast(output.kernel, output.compute_dtype))
        return logits + tf.cast(output.bias, output.compute_dtype) if output.use_bias else logits

    def activate(self, logits):
        """The output activation (softmax, sigmoid or linear) of ``per_step_logits``."""
        return self._output.activation(logits)

    def _build_body(self, states_shape):
        width = states_shape[-1]
        if self._hidden is not None:
            self._hidden.build((None, width))
            width = self.hidden_units
        return width

    def build(self, states_shape):
        self._output.build((None, self._build_body(states_shape)))
        self.built = True

    def call(self, states, mask=None, training=None):
        return self._output(self._features(states, mask, training))

    def compute_output_shape(self, states_shape):
        outputs = self._output.units
        if self.pooling == "none":
            return (*states_shape[:2], outputs)
        return (states_shape[0], outputs)

    def compute_mask(self, inputs, mask=None):
        return mask if self.pooling == "none" else None

    def get_config(self):
        return {
            **super().get_config(),
            "pooling": self.pooling,
            "hidden_units": self.hidden_units,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package="seqapps")
class ClassificationHead(_PooledHead):
    """Class probabilities from recurrent states.

    Args:
        num_classes: number of classes (>= 2 for one label per example, >= 1 with
            multi_label).
        multi_label: sigmoid per class (several labels per example) instead of softmax.
        pooling: "last", "mean", "max" or "none" (per time step).
        hidden_units: an optional ReLU layer before the output (0 for none).
        dropout: dropout on the pooled states in training.

    Input [batch, time, units] (+ mask [batch, time]); output [batch, num_classes], or
    [batch, time, num_classes] with pooling="none".

    Example:
    >>> import numpy as np
    >>> ClassificationHead(4, pooling="none")(np.zeros((1, 7, 2), "float32")).shape
    TensorShape([1, 7, 4])
    """

    def __init__(
        self,
        num_classes: int,
        *,
        multi_label: bool = False,
        pooling: str = "mean",
        hidden_units: int = 0,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(pooling=pooling, hidden_units=hidden_units, dropout=dropout, **kwargs)
        minimum = 1 if multi_label else 2
        if not isinstance(num_classes, int) or num_classes < minimum:
            raise invalid_argument("num_classes", num_classes, f"an integer >= {minimum}")
        self.num_classes = num_classes
        self.multi_label = multi_label
        self._output = keras.layers.Dense(
            num_classes, activation="sigmoid" if multi_label else "softmax", dtype="float32"
        )

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "multi_label": self.multi_label}


@keras.saving.register_keras_serializable(package="seqapps")
class RegressionHead(_PooledHead):
    """Real-valued targets from recurrent states (linear output).

    Args:
        num_targets: how many values per example (or per step).
        pooling: "last", "mean", "max", or "none" for per-step regression (with the
            delay convention of pipelines.windows: the target of step n is y(n + d)).
        hidden_units, dropout: as in ClassificationHead.

    Example:
    >>> import numpy as np
    >>> RegressionHead(2, pooling="last")(np.zeros((3, 5, 4), "float32")).shape
    TensorShape([3, 2])
    """

    def __init__(
        self,
        num_targets: int = 1,
        *,
        pooling: str = "mean",
        hidden_units: int = 0,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(pooling=pooling, hidden_units=hidden_units, dropout=dropout, **kwargs)
        if not isinstance(num_targets, int) or num_targets < 1:
            raise invalid_argument("num_targets", num_targets, "a positive integer")
        self.num_targets = num_targets
        self._output = keras.layers.Dense(num_targets, dtype="float32")

    def get_config(self):
        return {**super().get_config(), "num_targets": self.num_targets}
