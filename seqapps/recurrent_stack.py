"""The recurrent layers of a SequenceModel: what builds them, and the backward direction.

Every level of the stack is one layer made by the model's factory (`recurrent_layer`,
default seqapps.layers.Recurrent). With bidirectional=True the same factory makes a
second layer per level that reads the sequence from its end (go_backwards=True, as
keras.layers.Bidirectional asks of its backward layer); its outputs, which come in
processing order, are reversed back so that step t of both directions meet, then
concatenated or summed.

>>> forward = make_layers(None, 4, num_layers=2, activation="tanh",
...                       recurrent_initializer="orthogonal")
>>> backward = make_layers(None, 4, num_layers=2, activation="tanh",
...                        recurrent_initializer="orthogonal", backward=True)
>>> [layer.name for layer in forward + backward]
['recurrent_0', 'recurrent_1', 'recurrent_backward_0', 'recurrent_backward_1']
>>> layer_width(4, bidirectional=True, merge_mode="concat")
8
"""

from __future__ import annotations

import keras
import tensorflow as tf

from seqapps.errors import invalid_argument
from seqapps.layers.recurrent import Recurrent

MERGE_MODES = ("concat", "sum")


def resolve_factory(recurrent_layer):
    """None (the default Recurrent), a layer class or callable, or the registered name
    that `factory_config` writes; anything else is an error."""
    if isinstance(recurrent_layer, str):
        recurrent_layer = keras.saving.get_registered_object(recurrent_layer)
    if recurrent_layer is not None and not callable(recurrent_layer):
        raise invalid_argument(
            "recurrent_layer", recurrent_layer, "None, a layer class or a callable returning a layer"
        )
    return recurrent_layer


def factory_config(recurrent_layer) -> dict:
    """{} for the default Recurrent (so older .keras files and new ones look alike),
    else {"recurrent_layer": the factory's registered name}."""
    if recurrent_layer is None:
        return {}
    name = keras.saving.get_registered_name(recurrent_layer)
    if keras.saving.get_registered_object(name) is not recurrent_layer:
        raise invalid_argument(
            "recurrent_layer", recurrent_layer,
            "a class registered with keras.saving.register_keras_serializable for the model to be saved",
        )
    return {"recurrent_layer": name}


def make_layers(recurrent_layer, units: int, *, num_layers: int, activation, recurrent_initializer,
                options: dict | None = None, backward: bool = False) -> list:
    """`num_layers` layers from the factory (None: Recurrent), returning sequences,
    named recurrent_<i> (or recurrent_backward_<i>, reading backwards).

    `options` are Recurrent-only settings, passed only when set, so that keras' own RNN
    layers (keras.layers.GRU, ...) work as factories.
    """
    make_layer = Recurrent if recurrent_layer is None else recurrent_layer
    direction = {"go_backwards": True} if backward else {}
    prefix = "recurrent_backward" if backward else "recurrent"
    return [
        make_layer(units, activation=activation, recurrent_initializer=recurrent_initializer,
                   return_sequences=True, name=f"{prefix}_{i}", **direction, **(options or {}))
        for i in range(num_layers)
    ]


def check_bidirectional(bidirectional, merge_mode) -> None:
    """`bidirectional` is a bool and `merge_mode` one of MERGE_MODES, or an error."""
    if not isinstance(bidirectional, bool):
        raise invalid_argument("bidirectional", bidirectional, "True or False")
    if merge_mode not in MERGE_MODES:
        raise invalid_argument("merge_mode", merge_mode, "'concat' or 'sum'")


def layer_width(units: int, *, bidirectional: bool, merge_mode: str) -> int:
    """Width of each level's output: units, or 2 * units for concatenated directions."""
    return 2 * units if bidirectional and merge_mode == "concat" else units


def merge(forward, backward, merge_mode: str):
    """One level's output from the forward states and the backward layer's outputs
    (in its processing order, last step first), both [batch, time, units]."""
    backward = tf.reverse(backward, [1])
    if merge_mode == "sum":
        return forward + backward
    return tf.concat([forward, backward], axis=-1)
