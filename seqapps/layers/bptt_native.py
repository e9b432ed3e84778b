"""The recursion for training steps, run by the compiled kernels (seqapps.layers.native).

Same mathematics as seqapps.layers.bptt (whose docstring derives the BPTT recursion), laid
out for speed on a CPU: batch-major like the layer's inputs and outputs, so nothing is
transposed; x W_x + b, the loops, dW_x, dW_s and db in two kernels; dx, when something
needs it, as one product in TF.

>>> import tensorflow as tf
>>> ops = native_ops("tanh", tf.float32)          # None where the kernels cannot run
>>> x = tf.ones([1, 3, 1])                        # batch-major: batch 1, 3 steps
>>> if ops is not None:
...     states, final = native_recurrence(ops, x, tf.ones([1, 1]), tf.constant([[0.5]]),
...                                       tf.zeros([1]), tf.zeros([1, 1]), activation="linear")
...     assert [round(float(v), 3) for v in tf.reshape(states, [-1])] == [1.0, 1.5, 1.75]
"""

from __future__ import annotations

import keras
import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from seqapps.errors import invalid_argument
from seqapps.layers import native
from seqapps.layers.bptt import resolve_activation

# Recurrent(implementation=...): which loops training steps run.
IMPLEMENTATIONS = ("auto", "kernels", "graph")

# The activations recurrence_kernels.cc implements, by its attr name.
_KERNEL_ACTIVATION = {
    keras.activations.tanh: "tanh",
    keras.activations.sigmoid: "sigmoid",
    keras.activations.relu: "relu",
    keras.activations.linear: "linear",
}


def native_ops(activation, dtype):
    """The kernel module when the kernels can run here, else None.

    They run for float32/float64, the four activations they implement, on a machine
    without a GPU, outside XLA compilation (which cannot compile custom ops), and when
    seqapps.layers.native could build them.
    """
    return None if in_xla_context() else available_ops(activation, dtype)


def unavailable_reason(activation, dtype, *, environment: bool = True) -> str | None:
    """Why the kernels cannot run for this activation and dtype (XLA aside), or None;
    with environment=False the layer's configuration alone (not the GPU, not the switch)."""
    if resolve_activation(activation) not in _KERNEL_ACTIVATION:
        return f"they implement the activations {sorted(_KERNEL_ACTIVATION.values())} only"
    if tf.as_dtype(dtype) not in (tf.float32, tf.float64):
        return f"they run for float32 and float64 only, not {tf.as_dtype(dtype).name}"
    if not environment:
        return None
    if tf.config.list_logical_devices("GPU"):
        return "they are CPU kernels and this machine has a GPU"
    if not native.enabled():
        return f"{native.DISABLE_VARIABLE} switches them off"
    return None


def available_ops(activation, dtype):
    """native_ops() without the XLA check: what a layer resolves once."""
    if unavailable_reason(activation, dtype) is not None:
        return None
    return native.load()


def in_xla_context() -> bool:
    """True while tracing for XLA compilation (jit_compile=True), which cannot run custom ops."""
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def check_implementation(implementation, activation, dtype, *, normalize_preactivation=False):
    """Raise ConfigError when a layer so configured cannot have `implementation`."""
    if implementation not in IMPLEMENTATIONS:
        raise invalid_argument("implementation", implementation, f"one of {IMPLEMENTATIONS}")
    if implementation != "kernels":
        return
    reason = "they implement the plain recursion only" if normalize_preactivation else None
    reason = reason or unavailable_reason(activation, dtype, environment=False)
    if reason is not None:
        raise invalid_argument("implementation", implementation,
                               f'"auto" or "graph" here: the compiled kernels cannot run ({reason})')


def check_call(implementation, *, mask=None):
    """Raise ConfigError for a call the asked-for kernels cannot run (masks, XLA)."""
    if implementation == "kernels" and (mask is not None or in_xla_context()):
        raise invalid_argument(
            "implementation", implementation,
            '"auto" or "graph" for calls with a mask or under XLA (jit_compile=True), '
            "where the compiled kernels cannot run",
        )


def resolve_kernels(implementation, activation, dtype):
    """What the layer's training steps run, decided once: the kernel module or None (the
    graph loops). "auto" falls back to None; "kernels" that cannot run raise ConfigError."""
    if implementation == "graph":
        return None
    ops = available_ops(activation, dtype)
    if ops is None and implementation == "kernels":
        reason = unavailable_reason(activation, dtype) or "they could not be built, see the warning above"
        raise invalid_argument("implementation", implementation,
                               f'"auto" or "graph" here: the compiled kernels cannot run ({reason})')
    return ops


def native_recurrence(ops, inputs, kernel, recurrent_kernel, bias, initial_state, *,
                      activation="tanh", truncate_bptt=None, final_state_only=False):
    """(states [batch, time, units], final state [batch, units]) with BPTT in the kernels.

    Args:
        ops: from native_ops().
        inputs: [batch, time, features], batch-major.
        kernel, recurrent_kernel, bias, initial_state: W_x, W_s, b, s(0).
        activation: one of tanh, sigmoid, relu, linear (native_ops says which run).
        truncate_bptt: None, or k: the state's gradient is cut every k steps (as bptt).
        final_state_only: a promise that only the final state is used downstream.
    """
    name = _KERNEL_ACTIVATION[resolve_activation(activation)]

    @tf.custom_gradient
    def _recurrence(inputs, kernel, recurrent_kernel, bias, initial_state):
        states, final = ops.seqapps_recurrence_forward(
            inputs, kernel, bias, recurrent_kernel, initial_state, activation=name
        )

        def grad(d_states, d_final):
            if final_state_only:
                # Nothing reads d_states, so the zeros TF made for it are pruned.
                d_states = tf.zeros([0, 0, 0], d_final.dtype)
            d_pre, d_initial, d_kernel, d_recurrent, d_bias = ops.seqapps_recurrence_backward(
                inputs, states, recurrent_kernel, initial_state, d_states, d_final,
                activation=name, truncate=truncate_bptt or 0,
            )
            # dx (pruned from the graph when nothing needs it) as one product.
            d_inputs = tf.einsum("btu,fu->btf", d_pre, kernel)
            return d_inputs, d_kernel, d_recurrent, d_bias, d_initial

        return (states, final), grad

    return _recurrence(inputs, kernel, recurrent_kernel, bias, initial_state)
