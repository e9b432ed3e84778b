"""seqapps.layers.Recurrent: the plain recurrent layer with an explicit state.

    a(n) = x(n) W_x + s(n-1) W_s + b,   s(n) = phi(a(n)),   s(0) given (zeros by default)

The layer owns its time loop (it is not a cell inside keras.layers.RNN) and its backward
pass. `implementation` chooses it once, as keras.layers.LSTM(use_cudnn=...) does: in
training steps the compiled kernels of seqapps.layers.bptt_native ("kernels", or "auto"
where they run), otherwise TF graph loops (seqapps.layers.bptt, "graph"; always for
inference, export, masks, XLA, other dtypes). Both compute the same numbers. Weights are
named as in keras.layers.SimpleRNN (`kernel`, `recurrent_kernel`, `bias`): set_weights copies them.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from seqapps.errors import invalid_argument
from seqapps.layers import bptt
from seqapps.layers.bptt import recurrence, resolve_activation
from seqapps.layers.bptt_forward import forward_only
from seqapps.layers.bptt_native import (
    check_call,
    check_implementation,
    in_xla_context,
    native_recurrence,
    resolve_kernels,
)
from seqapps.layers.bptt_normalized import normalized_recurrence
from seqapps.layers.initializers import SpectralRadius
from seqapps.layers.state_gradients import StateGradientRecord, active_records

_NOT_ELEMENTWISE = ("softmax", "log_softmax")
_UNRESOLVED = object()


def _recurrent_initializer(value):
    """Accept Keras initializers plus ("spectral_radius", r) / {"spectral_radius": r}."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == "spectral_radius":
        return SpectralRadius(radius=value[1])
    if isinstance(value, dict) and set(value) == {"spectral_radius"}:
        return SpectralRadius(radius=value["spectral_radius"])
    return keras.initializers.get(value)


@keras.saving.register_keras_serializable(package="seqapps")
class Recurrent(keras.layers.Layer):
    """Plain recurrent layer: a(n) = x(n) W_x + s(n-1) W_s + b, s(n) = phi(a(n)).

    s(n) is both the output at step n and the memory carried to step n+1. Two special
    cases hold exactly: with W_s = 0 it is a Dense layer applied at every step; with a
    linear phi and one unit it is the first-order IIR filter
    s(n) = w_x x(n) + w_s s(n-1) + b (scipy.signal.lfilter([w_x], [1, -w_s], x)).

    Args:
        units: size of the state s(n), a positive integer.
        activation: phi, any elementwise Keras activation; "linear" or None for none.
        use_bias: whether the layer has the bias b.
        kernel_initializer, recurrent_initializer, bias_initializer: initializers of
            W_x, W_s and b. `recurrent_initializer` also takes "identity" (IRNN, with
            activation="relu") and ("spectral_radius", r) to rescale W_s to radius r.
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
            activity_regularizer: Keras regularizers.
        kernel_constraint, recurrent_constraint, bias_constraint: Keras constraints.
        dropout: fraction of input features dropped in training, the same features at
            every step of a sequence (as SimpleRNN).
        return_sequences: return s(1..T) [batch, time, units] instead of s(T).
        return_state: also return the final state s(T) [batch, units].
        go_backwards: process the sequence from its last step to its first; outputs
            are in processing order, as in Keras.
        stateful: keep the final state of each batch in a variable and start the next
            batch from it (row i continues row i); needs a fixed batch size.
        learn_initial_state: make s(0) a trainable weight `initial_state` [units].
        truncate_bptt: None for full BPTT, or k: the gradient through the state is cut
            every k steps, so no output's gradient reaches more than k steps back.
        normalize_preactivation: layer-normalise a(n) over units before phi, with
            trainable `preactivation_gamma` and `preactivation_beta` (Ba et al. 2016),
            z(n) = gamma * (a - mean(a)) / sqrt(var(a) + 1e-3) + beta, s(n) = phi(z(n));
            its BPTT is explicit too (seqapps.layers.bptt_normalized).
        seed: seed of the dropout noise.
        implementation: training steps run "kernels" (compiled CPU kernels, an error
            where they cannot run), "graph" (TF graph loops) or "auto" (kernels where they
            run; SEQAPPS_NATIVE_KERNELS=0 makes it "graph"), resolved once. Inference, and
            so export, and calls within state_gradients.record_state_gradients() (whose
            backward pass records dLoss/ds(n)) always run TF graph ops.

    Call arguments:
        inputs: [batch, time, features].
        initial_state: optional s(0) [batch, units] (overrides the learned/stateful one).
        mask: optional [batch, time] bool. Masked steps hold the state:
            s(n) = s(n-1), so with return_sequences their output repeats the last
            unmasked state (zeros, or s(0), before the first unmasked step).
        training: enables dropout.

    Returns:
        outputs, or (outputs, final_state) with return_state=True. Feeding a long
        sequence chunk by chunk with the previous final state as initial_state gives
        the same outputs as one call on the whole sequence.

    Example:
    >>> import numpy as np, keras
    >>> from seqapps.layers import Recurrent
    >>> layer = Recurrent(1, activation="linear", use_bias=False,
    ...                   kernel_initializer="ones",
    ...                   recurrent_initializer=keras.initializers.Constant(0.5))
    >>> y = layer(np.ones((1, 3, 1), "float32"), )
    >>> round(float(y[0, 0]), 4)          # s(3) = 1 + 0.5 (1 + 0.5 * 1)
    1.75
    """

    def __init__(
        self,
        units: int,
        *,
        activation="tanh",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        learn_initial_state: bool = False,
        truncate_bptt: int | None = None,
        normalize_preactivation: bool = False,
        seed: int | None = None,
        implementation: str = "auto",
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise invalid_argument("units", units, "a positive integer")
        if isinstance(activation, str) and activation in _NOT_ELEMENTWISE:
            raise invalid_argument("activation", activation, "an elementwise activation")
        try:
            self._phi = resolve_activation(activation)
        except (ValueError, TypeError) as err:
            raise invalid_argument(
                "activation", activation, "a Keras activation name, a callable or None"
            ) from err
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise invalid_argument("dropout", dropout, "a number in [0, 1)")
        if truncate_bptt is not None and (
            not isinstance(truncate_bptt, int) or isinstance(truncate_bptt, bool) or truncate_bptt <= 0
        ):
            raise invalid_argument("truncate_bptt", truncate_bptt, "None or a positive integer")
        self.units = units
        self.activation = activation
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = _recurrent_initializer(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = float(dropout)
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = stateful
        self.learn_initial_state = learn_initial_state
        self.truncate_bptt = truncate_bptt
        self.normalize_preactivation = bool(normalize_preactivation)
        self.seed = seed
        self.implementation = implementation
        check_implementation(implementation, self._phi, self.compute_dtype,
                             normalize_preactivation=normalize_preactivation)
        self._training_ops = _UNRESOLVED
        self.seed_generator = keras.random.SeedGenerator(seed) if dropout else None
        self.supports_masking = True
        self.state = None

    # ----------------------------------------------------------------- weights
    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise invalid_argument("inputs.shape", input_shape, "of rank 3: [batch, time, features]")
        features = input_shape[-1]
        if features is None:
            raise invalid_argument("inputs.shape", input_shape, "[batch, time, features] with features known")
        self.kernel = self.add_weight(
            name="kernel",
            shape=(features, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=(self.units, self.units),
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.preactivation_gamma = self.preactivation_beta = None
        if self.normalize_preactivation:
            self.preactivation_gamma = self.add_weight(
                name="preactivation_gamma", shape=(self.units,), initializer="ones"
            )
            self.preactivation_beta = self.add_weight(
                name="preactivation_beta", shape=(self.units,), initializer="zeros"
            )
        self.initial_state = None
        if self.learn_initial_state:
            self.initial_state = self.add_weight(
                name="initial_state", shape=(self.units,), initializer="zeros"
            )
        if self.stateful:
            batch = input_shape[0]
            if batch is None:
                raise invalid_argument(
                    "batch_size", None, "fixed for a stateful layer (give keras.Input(batch_size=...))"
                )
            self.state = self.add_weight(
                name="state", shape=(batch, self.units), initializer="zeros", trainable=False
            )
        self.built = True

    def reset_state(self):
        """Set the kept state of a stateful layer back to s(0) (zeros or the learned one)."""
        if self.state is None:
            return
        self.state.assign(self._default_initial_state(self.state.shape[0], self.state.dtype))

    def reset_states(self):  # the Keras 2 spelling, still common in user code
        self.reset_state()

    # ------------------------------------------------------------------- call
    def _default_initial_state(self, batch, dtype):
        if self.initial_state is not None:
            learned = tf.cast(tf.convert_to_tensor(self.initial_state), dtype)
            return tf.broadcast_to(learned[tf.newaxis], [batch, self.units])
        return tf.zeros([batch, self.units], dtype)

    def _check_inputs(self, inputs):
        if inputs.shape.rank != 3:
            raise invalid_argument(
                "inputs.shape", tuple(inputs.shape), "of rank 3: [batch, time, features]"
            )
        expected = self.kernel.shape[0]
        if inputs.shape[-1] is not None and inputs.shape[-1] != expected:
            raise invalid_argument(
                "inputs.shape",
                tuple(inputs.shape),
                f"[batch, time, {expected}] (the feature size the layer was built with)",
            )

    def _check_initial_state(self, initial_state, dtype):
        if isinstance(initial_state, (list, tuple)):
            if len(initial_state) != 1:
                raise invalid_argument(
                    "len(initial_state)", len(initial_state), "1: one tensor [batch, units]"
                )
            initial_state = initial_state[0]
        initial_state = tf.cast(tf.convert_to_tensor(initial_state), dtype)
        if initial_state.shape.rank != 2 or initial_state.shape[-1] not in (None, self.units):
            raise invalid_argument(
                "initial_state.shape", tuple(initial_state.shape), f"[batch, {self.units}]"
            )
        return initial_state

    def call(self, inputs, initial_state=None, mask=None, training=None):
        inputs = tf.convert_to_tensor(inputs)
        self._check_inputs(inputs)
        dtype = self.compute_dtype
        inputs = tf.cast(inputs, dtype)
        batch = tf.shape(inputs)[0]

        if initial_state is not None:
            initial_state = self._check_initial_state(initial_state, dtype)
        elif self.stateful:
            initial_state = tf.cast(tf.convert_to_tensor(self.state), dtype)
        else:
            initial_state = self._default_initial_state(batch, dtype)

        if training and self.dropout > 0:
            # One mask per sequence, shared by all steps (variational dropout, as SimpleRNN).
            noise = keras.random.dropout(
                tf.ones_like(inputs[:, :1, :]), self.dropout, seed=self.seed_generator
            )
            inputs = inputs * noise

        kernel = tf.cast(tf.convert_to_tensor(self.kernel), dtype)
        recurrent_kernel = tf.cast(tf.convert_to_tensor(self.recurrent_kernel), dtype)
        bias = (
            tf.cast(tf.convert_to_tensor(self.bias), dtype)
            if self.use_bias
            else tf.zeros([self.units], dtype)
        )
        weights = (kernel, recurrent_kernel, bias, initial_state)
        records = active_records()
        plain = mask is None and not self.normalize_preactivation and records is None
        ops = None
        if training and records is None and not self.normalize_preactivation and (
            mask is None or self.implementation == "kernels"  # which raises for a mask
        ):
            ops = self._kernels_for_this_call(mask)
        steps = inputs.shape[1]
        # Inference on a short sequence of known length: the forward pass alone (not with
        # truncate_bptt, whose gradient a caller may still take).
        inference_only = (
            not training and plain and self.truncate_bptt is None
            and steps is not None and 0 < steps <= bptt.full_unroll_max()
        )
        if ops is not None or inference_only:
            sequence = tf.reverse(inputs, [1]) if self.go_backwards else inputs
            if ops is not None:
                states, final_state = native_recurrence(
                    ops, sequence, *weights, activation=self._phi,
                    truncate_bptt=self.truncate_bptt, final_state_only=not self.return_sequences,
                )
            else:
                states, final_state = forward_only(
                    sequence, *weights, activation=self._phi,
                    return_sequences=self.return_sequences,
                )
            outputs = states if self.return_sequences else final_state
        else:
            record = None if records is None else StateGradientRecord(self)
            states, final_state = self._graph_recursion(inputs, mask, weights, batch, record)
            if record is not None and record.states is not None:
                records.append(record)
            outputs = tf.transpose(states, [1, 0, 2]) if self.return_sequences else final_state

        if self.stateful:
            self.state.assign(tf.cast(final_state, self.state.dtype))
        if self.return_state:
            return outputs, final_state
        return outputs

    def _kernels_for_this_call(self, mask):
        """The compiled kernels for a training call, or None for the graph loops. Resolved
        once, on the first training call (when the kernels are loaded, or built: about a
        minute the first time on a machine); only XLA tracing and masks are per call."""
        check_call(self.implementation, mask=mask)
        if self._training_ops is _UNRESOLVED:
            self._training_ops = resolve_kernels(self.implementation, self._phi, self.compute_dtype)
        return None if in_xla_context() else self._training_ops

    def _graph_recursion(self, inputs, mask, weights, batch, record=None):
        """(time-major states, final state) from the TF graph loops of bptt; `record`
        (a StateGradientRecord or None) gets the states and, in the backward pass, G(n)."""
        kernel, recurrent_kernel, bias, initial_state = weights
        dtype = self.compute_dtype
        time_major = tf.transpose(inputs, [1, 0, 2])
        if mask is not None:
            mask = tf.transpose(tf.cast(mask, tf.bool), [1, 0])
        if self.go_backwards:
            time_major = tf.reverse(time_major, [0])
            mask = None if mask is None else tf.reverse(mask, [0])
        final_state = None
        if time_major.shape[0] == 0:
            # A sequence known to be empty: no recursion, the state stays s(0).
            states = tf.zeros(tf.stack([0, batch, self.units]), dtype)
        elif self.normalize_preactivation:
            states = normalized_recurrence(
                time_major,
                kernel,
                recurrent_kernel,
                bias,
                initial_state,
                tf.cast(tf.convert_to_tensor(self.preactivation_gamma), dtype),
                tf.cast(tf.convert_to_tensor(self.preactivation_beta), dtype),
                activation=self._phi,
                mask=mask,
                truncate_bptt=self.truncate_bptt,
                on_state_gradients=None if record is None else record.set_gradients,
            )
        else:
            states, final_state = recurrence(
                time_major,
                kernel,
                recurrent_kernel,
                bias,
                initial_state,
                activation=self._phi,
                mask=mask,
                truncate_bptt=self.truncate_bptt,
                final_state_only=not self.return_sequences,
                return_final_state=True,
                on_state_gradients=None if record is None else record.set_gradients,
            )
        if record is not None and time_major.shape[0] != 0:
            record.states = states
        if final_state is None:
            final_state = bptt.final_state(states, initial_state)
        return states, final_state

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask, None]
        return output_mask

    def compute_output_shape(self, inputs_shape, initial_state_shape=None):
        batch, steps = inputs_shape[0], inputs_shape[1]
        output = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return output, (batch, self.units)
        return output

    def get_config(self):
        config = {
            "units": self.units,
            "activation": keras.activations.serialize(self._phi)
            if not isinstance(self.activation, str) and self.activation is not None
            else self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "learn_initial_state": self.learn_initial_state,
            "truncate_bptt": self.truncate_bptt,
            "normalize_preactivation": self.normalize_preactivation,
            "seed": self.seed,
            "implementation": self.implementation,
        }
        return {**super().get_config(), **config}
