"""The public hook for recording G(n) = dLoss/ds(n), the gradient reaching each state.

Within `record_state_gradients()`, every Recurrent call runs its TF graph recursion
(bptt.recurrence, or bptt_normalized for normalize_preactivation) and appends one
`StateGradientRecord` per call, in call order; the backward pass of that recursion fills
in `gradients`: the total gradient reaching each s(n), through the recursion and through
everything downstream of it. Nothing is patched: the layer passes the record's setter to
the recursion's `on_state_gradients` hook. seqapps.diagnostics is built on it.

Run the model eagerly inside the context (a traced graph would record symbolic tensors).
A record whose recursion the gradient never reached keeps `gradients=None`.

>>> import numpy as np, tensorflow as tf
>>> from seqapps.layers import Recurrent
>>> layer = Recurrent(2, return_sequences=True)
>>> x = tf.constant(np.ones((1, 4, 3), "float32"))
>>> with record_state_gradients() as records, tf.GradientTape() as tape:
...     loss = tf.reduce_sum(layer(x))
>>> _ = tape.gradient(loss, layer.trainable_weights)
>>> records[0].layer is layer, tuple(records[0].gradients.shape)   # [time, batch, units]
(True, (4, 1, 2))
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import tensorflow as tf

# One stack per thread: a recording in one thread says nothing about calls traced in
# another (tf.distribute replicas trace in parallel threads).
_ACTIVE = threading.local()


class StateGradientRecord:
    """One Recurrent call seen by record_state_gradients().

    Attributes:
        layer: the Recurrent layer that was called.
        states: s(1..T) [time, batch, units], time-major, in processing order.
        gradients: G(n) [time, batch, units] once the backward pass ran, else None.
    """

    def __init__(self, layer):
        self.layer = layer
        self.states: tf.Tensor | None = None  # set when the recursion returns
        self.gradients: tf.Tensor | None = None

    def set_gradients(self, gradients: tf.Tensor) -> None:
        """The recursion's `on_state_gradients` hook."""
        self.gradients = gradients


@contextlib.contextmanager
def record_state_gradients() -> Iterator[list[StateGradientRecord]]:
    """Record every Recurrent call made within it; yields the list of records."""
    stack = getattr(_ACTIVE, "stack", None)
    if stack is None:
        stack = _ACTIVE.stack = []
    records: list[StateGradientRecord] = []
    stack.append(records)
    try:
        yield records
    finally:
        stack.pop()


def active_records() -> list[StateGradientRecord] | None:
    """The list the innermost record_state_gradients() of this thread fills, or None."""
    stack = getattr(_ACTIVE, "stack", None)
    return stack[-1] if stack else None
